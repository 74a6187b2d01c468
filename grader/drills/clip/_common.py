"""What the drill 03 checks of `clip_loss` and `LogitScale` share: the cap and the initial value of
the logit scale, and the lookup that names a mistake from the wrong value it produces."""

from __future__ import annotations

import math

from ...inputs import close as _close

CAP = 100.0
INIT = 1 / 0.07  # CLIP's initial multiplier, 14.2857...


def _match(value, signatures, **tol):
    """The mistake whose signature value equals `value`, or None."""
    for signature, mistake in signatures:
        if math.isfinite(signature) and _close(value, signature, **tol):
            return mistake
    return None
