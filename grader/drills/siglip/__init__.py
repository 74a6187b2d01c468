"""Checks for drill 08 (SigLIP, Zhai et al. 2023): `siglip_loss`, a sigmoid on every image-text
pair instead of a softmax over the batch.

Nothing here computes the answer the way a solution would. The checks use towers whose cosine
similarities are known (perfect pairs: 1 on the diagonal, 0 elsewhere; opposite pairs: -1 on the
diagonal), where the loss has a closed form in the scale t, the bias b and N; a scale of 0, where
every logit is the bias; properties every correct implementation has (invariance to embedding
lengths and to the order of the pairs, gradients into all four inputs, finite values where a
naive log of a sigmoid underflows); and known answers in grader/data/siglip_loss.json. A wrong
closed-form value is matched against what each classic mistake gives (`_signatures`), on several
probes at once, so that one mistake gets one diagnosis.

One module per graded name: `loss` (siglip_loss). `broken` holds losses wrong on purpose for the
notebook's break-it cell and is not imported here.
"""

from . import loss  # noqa: F401
