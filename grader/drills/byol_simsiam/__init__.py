"""Checks for drill 06: BYOL's `byol_loss` (Grill et al. 2020) and SimSiam's `simsiam_loss` (Chen
and He 2021), the two losses that learn without negatives.

Both compare a prediction with a target by cosine similarity and send no gradient into the
target. The checks use inputs with a closed form (a prediction equal to its target, opposite
to it, orthogonal to it), the invariance of cosine similarity to rescaling, where the gradient
goes (the predictions must receive one, the targets none), and known answers stored in
grader/data/byol_loss.json and simsiam_loss.json. A wrong closed-form value is matched against
what each classic mistake gives, so that one mistake gets one diagnosis.

One module per graded name: `byol` and `simsiam`, imported in that order.
"""

from . import byol, simsiam  # noqa: F401, I001  (the order sets the registration order)
