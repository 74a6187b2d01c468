"""`byol_loss(p, z)`: BYOL's loss of online predictions p against target projections z, the mean
over the batch of 2 - 2 cos(p, z), the squared distance between the L2-normalised vectors, with
no gradient into z (the target network is trained only by its moving average)."""

from __future__ import annotations

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import close as _close
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.lookup import which_mistake
from ...kit.mistakes import GRAPH_CUT, IN_PLACE, SINGLE_PAIR_BREAKS
from ...sandbox import Fail
from ._common import (
    DRILL,
    NOT_NORMALISED,
    TARGET_GETS_GRADIENT,
    aligned,
    changed_by_rescaling,
    opposite,
    orthogonal,
    value_of,
)

checks = checklist("byol_loss", drill=DRILL, smoke=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4)))

NEGATIVE_COSINE = ("the loss is the negative cosine similarity (SimSiam's D), not BYOL's "
                   "2 - 2 cos: a perfect prediction should cost 0, not -1")
ONE_MINUS_COSINE = ("the loss is 1 - cos, half of BYOL's 2 - 2 cos (the squared distance between "
                    "unit vectors)")
SUMMED = "the per-sample losses are summed instead of averaged over the batch"
PER_DIMENSION = ("the squared distance is averaged over the dimensions instead of summed over "
                 "them: that divides 2 - 2 cos by D")

_HINTS = {
    NEGATIVE_COSINE: "normalise both, then take the squared distance between the unit vectors: "
    "2 minus twice their cosine",
    ONE_MINUS_COSINE: "the squared distance between two unit vectors is two minus twice their "
    "cosine, not one minus it",
    SUMMED: "one mean over the N samples",
    PER_DIMENSION: "sum the squared differences over the dimensions of each sample, then average "
    "over the samples",
}


def _signatures(kind, n, d) -> dict[float, str]:
    """What classic mistakes give on `kind` of inputs ("opposite": cos -1, "orthogonal": 0)."""
    cos = {"opposite": -1.0, "orthogonal": 0.0}[kind]
    return {-cos: NEGATIVE_COSINE, 1 - cos: ONE_MINUS_COSINE, n * (2 - 2 * cos): SUMMED,
            (2 - 2 * cos) / d: PER_DIMENSION}

laws.returns_scalar(checks, loss=value_of, hint="average over the batch: one number")
laws.leaves_inputs_unchanged(
    checks, run=value_of, diagnosis=IN_PLACE, hint="normalise into new tensors, never in place",
    inputs=lambda: [(3.0 * _randn(5, 6, seed=100), _randn(5, 6, seed=101) + 1.0)])


@checks.add(
    "a prediction equal to its target costs exactly 0",
    diagnosis="the loss of a perfect prediction is not 0",
    hint="BYOL's loss is the squared distance between the unit vectors: zero when they agree",
)
def perfect(fn):
    value = value_of(fn, *aligned()).item()
    if abs(value) <= 1e-6:
        return "0"
    mistake = NEGATIVE_COSINE if _close(value, -1.0) else None
    raise Fail(f"p equal to z gave {value:.5f}", diagnosis=mistake,
               hint=_HINTS.get(mistake), measured=f"{value:.5f}", expected="0")


@checks.add(
    "an opposite prediction costs 4, an orthogonal one 2",
    diagnosis="the loss of an opposite or orthogonal prediction is wrong",
    hint="the squared distance of the unit vectors: four when they point apart, two when they "
    "are at right angles",
)
def opposite_and_orthogonal(fn):
    for kind, inputs, expected in (("opposite", opposite(), 4.0),
                                   ("orthogonal", orthogonal(), 2.0)):
        value = value_of(fn, *inputs).item()
        if not _close(value, expected):
            n, d = inputs[0].shape
            mistake = which_mistake(value, _signatures(kind, n, d))
            raise Fail(f"{kind} predictions (N={n}) gave {value:.5f}", diagnosis=mistake,
                       hint=_HINTS.get(mistake), measured=f"{value:.5f}",
                       expected=f"{expected:.0f}")
    return "4 and 2"


@checks.add(
    "is invariant to rescaling the rows of p and of z (cosine similarity)",
    diagnosis=NOT_NORMALISED,
    hint="normalise each row of p and of z to unit length (along the feature dimension) first",
)
def rescaling(fn):
    base, changed = changed_by_rescaling(fn, [_randn(5, 8, seed=102), _randn(5, 8, seed=103)],
                                         ("p", "z"))
    if changed:
        raise Fail(f"rescaling the rows of {' and '.join(changed)} changed the loss",
                   measured=", ".join(changed), expected="the row lengths do not matter")
    return f"{base:.5f} whatever the row lengths"


@checks.add(
    "the gradient reaches p and never z (the stop-gradient)",
    diagnosis=TARGET_GETS_GRADIENT,
    hint="the target is a constant for this loss: detach z before comparing",
)
def stop_gradient(fn):
    p = _randn(5, 8, seed=104).requires_grad_(True)
    z = _randn(5, 8, seed=105).requires_grad_(True)
    value = value_of(fn, p, z)
    if not value.requires_grad:
        raise Fail("the returned loss does not require grad", diagnosis=GRAPH_CUT,
                   hint="stay in torch operations from p to the loss")
    value.backward()
    if p.grad is None or not p.grad.abs().max() > 0:
        raise Fail("no gradient reached p", diagnosis=GRAPH_CUT,
                   hint="stay in torch operations from p to the loss")
    if z.grad is not None and z.grad.abs().max() > 0:
        raise Fail("a gradient reached z", measured=f"|grad z| up to {z.grad.abs().max():.3g}",
                   expected="no gradient into z")
    return "p gets a gradient, z none"


@checks.add(
    "works for a batch of one pair (N = 1)",
    diagnosis=SINGLE_PAIR_BREAKS,
    hint="nothing in the loss depends on the batch holding more than one sample",
    crash_means_mistake=True,
)
def single(fn):
    p, z = opposite(1, 4)
    value = value_of(fn, p, z).item()
    if not _close(value, 4.0):
        raise Fail(f"one opposite pair gave {value:.5f}", measured=f"{value:.5f}", expected="4",
                   conclusive=False)


def _float64_wrong(value, expected):
    return Fail(f"the loss is float64 but its value is wrong: {value:.6f}",
                measured=f"{value:.15f}", expected=f"{expected:.15f}", conclusive=False)


def _float64_loss(fn, a, b):
    # The law's rows are (1, tiny, 1) against themselves: a perfect prediction, whose loss is 0
    # only if no float32 rounding creeps in.
    return value_of(fn, a, b)

laws.keeps_float64(checks, expected=0.0, wrong_value=_float64_wrong, loss=_float64_loss)


def _stored_value(case, loss):
    laws.check_stored(loss, case["loss"], f"N={len(case['p'])}, D={len(case['p'][0])}")


def _stored_case(case):
    p = torch.tensor(case["p"], dtype=torch.float64, requires_grad=True)
    return (p, torch.tensor(case["z"], dtype=torch.float64)), {"p": p}

laws.known_answers(
    checks, cases=lambda: load_cases("byol_loss"), build=_stored_case, loss=value_of,
    check_value=_stored_value, where=lambda case: f"N={len(case['p'])}",
    missing_mistake=lambda fn, missing, args, case: GRAPH_CUT,
    hint="if the other checks pass, compare the reduction over the batch")

