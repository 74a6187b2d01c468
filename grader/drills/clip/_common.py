"""What the drill 03 checks of `clip_loss` and `LogitScale` share: the cap and the initial value of
the logit scale (signature lookups go through grader.kit.lookup.which_mistake)."""

from __future__ import annotations

CAP = 100.0
INIT = 1 / 0.07  # CLIP's initial multiplier, 14.2857...
