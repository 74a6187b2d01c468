"""Checks for drill 01: `nt_xent_loss(z1, z2, temperature=0.5)`, SimCLR's NT-Xent loss.

The checks never compute the loss the way a solution would. They use inputs whose correct loss
has a closed form (collapsed embeddings, perfect pairs, N = 1), properties every correct loss
has (invariances, symmetry, gradients) and known answers stored in grader/data/nt_xent.json.
Where a wrong value has a recognisable signature (log(2N) instead of log(2N-1), say), the
failure names the mistake that produces it, in the words of grader/drills/nt_xent/_mistakes.py
(or of grader/kit/mistakes.py, for the mistakes other drills name too), so that one mistake
gives one diagnosis however many checks it fails. The property laws every loss obeys (scalar
out, inputs unchanged, invariances, finite at tau = 0.01, float64, N = 1, known answers) are
registered from grader/kit/laws.py; the modules here hold the checks that tell NT-Xent apart.

The stretch, `info_nce_loss(query, positive_key, negative_keys, temperature=0.1)`, has its
checklist in `info_nce`.

The checks of `nt_xent_loss` live in two modules, `loss` (closed forms, the positive, the
temperature, invariances) and `numerics` (gradients, stability, float64, N = 1, known answers),
imported in that order, which is the order the checks register and are reported in.
"""

from . import loss, numerics, info_nce  # noqa: F401, I001  (the order sets the registration order)
