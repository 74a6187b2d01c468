"""What the checks of drill 02 (SimCLR) share: the drill's id, the longer limit for a first call
that builds an optimiser, the real digits (grader/data/simclr_*.json) and their decoding, and the
re-labelling of a crash on an input with a known pitfall. It checks nothing itself.
"""

from __future__ import annotations

import torch

from ...data import load_cases
from ...sandbox import Fail

DRILL = "02_simclr"

# The first torch optimiser built in a fresh process imports torch._dynamo: about a second of CPU.
# The first check of a name whose learner code builds an optimiser (train_simclr, linear_probe)
# gets this longer limit; the checks themselves take a few hundredths of a second.
_FIRST_CALL_TIMEOUT = 20.0


def _decode(rows, dtype=torch.float32):
    """Stored images (strings of base-17 pixel values 0..16) as a float tensor scaled to [0, 1]."""
    return torch.tensor([[int(c, 17) for c in row] for row in rows], dtype=dtype) / 16


def _digits(n=64, dtype=torch.float32):
    """n real 8x8 digits, shape (n, 1, 8, 8), values in [0, 1]."""
    rows = load_cases("simclr_digits")[0]["images"][:n]
    return _decode(rows, dtype).view(-1, 1, 8, 8)


def _crashed(exc: Fail, *, diagnosis: str, hint: str) -> Fail:
    """Re-label a crash on an input that has a known, specific pitfall."""
    return Fail(exc.message, diagnosis=diagnosis, hint=hint)
