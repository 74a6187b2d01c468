"""Checks for drill 01: `nt_xent_loss(z1, z2, temperature=0.5)`, SimCLR's NT-Xent loss.

The checks never compute the loss the way a solution would. They use inputs whose correct loss
has a closed form (collapsed embeddings, perfect pairs, N = 1), properties every correct loss
has (invariances, symmetry, gradients) and known answers stored in grader/data/nt_xent.json.
Where a wrong value has a recognisable signature (log(2N) instead of log(2N-1), say), the
failure names the mistake that produces it, in the words of grader/drills/nt_xent/_mistakes.py,
so that one mistake gives one diagnosis however many checks it fails.

The checks live in two modules, `loss` (closed forms, the positive, the temperature,
invariances) and `numerics` (gradients, stability, float64, N = 1, known answers), imported in
that order, which is the order the checks register and are reported in.
"""

from . import loss, numerics  # noqa: F401, I001  (the order sets the registration order)
