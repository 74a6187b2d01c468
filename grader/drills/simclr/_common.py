"""What the checks of drill 02 (SimCLR) share: the drill's id, the longer limit for a first call
that builds an optimiser (and the decorator that sets it), the real digits
(grader/data/simclr_*.json) and their decoding, the re-labelling of a crash on an input with a
known pitfall, and the switch that lets a name's checks move the global generator. It checks
nothing itself.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ...data import load_cases
from ...sandbox import Fail

DRILL = "02_simclr"

# The first torch optimiser built in a fresh process imports torch._dynamo: about a second of CPU.
# The first check of a name whose learner code builds an optimiser (train_simclr, linear_probe)
# gets this longer limit; the checks themselves take a few hundredths of a second.
_FIRST_CALL_TIMEOUT = 20.0


def _first_check(checks, title, **kwargs):
    """checks.add for the first check of a name whose learner code builds an optimiser: the same,
    with the longer limit of a first call."""
    return checks.add(title, timeout=_FIRST_CALL_TIMEOUT, **kwargs)

_CRASHED = "the function crashed on a valid input"  # sandbox.call's diagnosis of a crash


def _decode(rows, dtype=torch.float32):
    """Stored images (strings of base-17 pixel values 0..16) as a float tensor scaled to [0, 1]."""
    return torch.tensor([[int(c, 17) for c in row] for row in rows], dtype=dtype) / 16


def _digits(n=64, dtype=torch.float32):
    """n real 8x8 digits, shape (n, 1, 8, 8), values in [0, 1]."""
    rows = load_cases("simclr_digits")[0]["images"][:n]
    return _decode(rows, dtype).view(-1, 1, 8, 8)


@contextmanager
def _crash_means(mistake, control=None):
    """Within the block, a crash of the learner's code is re-labelled as `mistake` (a dict with
    the diagnosis and hint of the pitfall the block's input has). `control`, when given, runs
    first on an input without the pitfall: when that fails too, its failure is reported instead."""
    try:
        yield
    except Fail as exc:
        if exc.diagnosis == _CRASHED:
            if control is not None:
                control()
            raise Fail(exc.message, **mistake) from None
        raise


def _allow_global_rng(checks):
    """Let every check of `checks` move torch's global generator (the grader restores it after
    each check): for a name whose code legitimately draws from it, building an nn.Module say."""
    for check in checks.checks:
        check.rng_allowed = True
