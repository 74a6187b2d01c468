"""`simsiam_loss(p1, p2, z1, z2)`: SimSiam's symmetrised loss D(p1, z2) / 2 + D(p2, z1) / 2, where
D(p, z) is minus the cosine similarity averaged over the batch and z passes through a
stop-gradient: each view's prediction chases the other view's projection, and only the
predictions carry gradient."""

from __future__ import annotations

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import close as _close
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.mistakes import GRAPH_CUT, IN_PLACE, SINGLE_PAIR_BREAKS
from ...sandbox import Fail
from ._common import (
    DRILL,
    NOT_NORMALISED,
    TARGET_GETS_GRADIENT,
    changed_by_rescaling,
    value_of,
)

checks = checklist(
    "simsiam_loss", drill=DRILL,
    smoke=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4), torch.eye(2, 4), torch.eye(2, 4)))

NAMES = ("p1", "p2", "z1", "z2")
SAME_VIEW = ("each prediction is compared with its own view's projection (p1 with z1): SimSiam "
             "compares p1 with z2 and p2 with z1, each view predicting the other")
BYOL_FORM = ("the loss uses BYOL's 2 - 2 cos instead of SimSiam's D = -cos: a perfect "
             "prediction should give -1, not 0")
POSITIVE = "the cosine similarity is not negated: minimising it pushes the views apart"
HALVES_ADDED = ("the two terms are added instead of halved: D(p1, z2) / 2 + D(p2, z1) / 2 lies "
                "between -1 and 1")
BATCH_SUMMED = "the cosines are summed over the batch instead of averaged"
STOP_ON_PREDICTIONS = ("the stop-gradient is on the predictions instead of the projections: "
                       "the gradient must reach p1 and p2, never z1 and z2")

# (value with each prediction equal to the other view's projection, value with it opposite),
# N = 4: the classic mistakes give distinct pairs.
_PAIRS = {(-1.0, 1.0): None, (0.0, 0.0): SAME_VIEW, (0.0, 4.0): BYOL_FORM, (1.0, -1.0): POSITIVE,
          (-2.0, 2.0): HALVES_ADDED, (-4.0, 4.0): BATCH_SUMMED}
_HINTS = {
    SAME_VIEW: "pair each view's prediction with the other view's projection",
    BYOL_FORM: "D is minus the mean cosine similarity, and the loss is the average of D for "
    "the first prediction with the second projection and for the second with the first",
    POSITIVE: "D is minus the cosine similarity, so that minimising it aligns the vectors",
    HALVES_ADDED: "average the two directions: half of each",
    BATCH_SUMMED: "D averages the cosine over the samples of the batch",
}


def cross_inputs(sign=1.0, n=4, d=8):
    """z1 and z2 orthogonal to each other, each prediction equal to (sign = 1) or opposite to
    (sign = -1) the other view's projection, so that a pairing with the own view reads 0."""
    eye = torch.eye(2 * n, d)
    z1, z2 = eye[:n], eye[n:2 * n]
    return sign * z2, sign * z1, z1.clone(), z2.clone()


laws.returns_scalar(checks, loss=lambda fn, a, b: value_of(fn, a, b, b.flip(0), a.flip(0)),
                    hint="average over the batch and over the two directions: one number")
laws.leaves_inputs_unchanged(
    checks, run=value_of, diagnosis=IN_PLACE, hint="normalise into new tensors, never in place",
    inputs=lambda: [tuple(c * _randn(5, 6, seed=110 + i) for i, c in enumerate((3, 1, 2, 0.5)))])


@checks.add(
    "cross-paired views: -1 when each prediction equals the other view's projection, +1 when "
    "opposite",
    diagnosis="the loss of a perfect (or opposite) cross prediction is wrong",
    hint="D is minus the mean cosine, and the loss averages it over the two crossed pairs of a "
    "prediction and the other view's projection",
)
def closed_forms(fn):
    got = (value_of(fn, *cross_inputs(1.0)).item(), value_of(fn, *cross_inputs(-1.0)).item())
    if _close(got[0], -1.0) and _close(got[1], 1.0):
        return "-1 and +1"
    mistake = next((m for (a, b), m in _PAIRS.items()
                    if m and _close(got[0], a) and _close(got[1], b)), None)
    raise Fail(f"perfect cross predictions gave {got[0]:.5f}, opposite ones {got[1]:.5f}",
               diagnosis=mistake, hint=_HINTS.get(mistake),
               measured=f"{got[0]:.5f}, {got[1]:.5f}", expected="-1, +1")


@checks.add(
    "is invariant to rescaling the rows of each input (cosine similarity)",
    diagnosis=NOT_NORMALISED,
    hint="normalise each row of the predictions and of the projections to unit length first",
)
def rescaling(fn):
    base, changed = changed_by_rescaling(fn, [_randn(5, 8, seed=120 + i) for i in range(4)],
                                         NAMES)
    if changed:
        raise Fail(f"rescaling the rows of {' and '.join(changed)} changed the loss",
                   measured=", ".join(changed), expected="no input's row lengths matter")
    return f"{base:.5f} whatever the row lengths"


@checks.add(
    "the gradient reaches p1 and p2 and never z1 or z2 (the stop-gradient)",
    diagnosis=TARGET_GETS_GRADIENT,
    hint="the projections are constants for this loss: detach z1 and z2 before comparing",
)
def stop_gradient(fn):
    leaves = {name: _randn(5, 8, seed=130 + i).requires_grad_(True)
              for i, name in enumerate(NAMES)}
    value = value_of(fn, *leaves.values())
    if not value.requires_grad:
        raise Fail("the returned loss does not require grad", diagnosis=GRAPH_CUT,
                   hint="stay in torch operations from the predictions to the loss")
    value.backward()
    has = {n: t.grad is not None and bool(t.grad.abs().max() > 0) for n, t in leaves.items()}
    if not has["p1"] and not has["p2"] and (has["z1"] or has["z2"]):
        raise Fail("the gradient reached the projections and not the predictions",
                   diagnosis=STOP_ON_PREDICTIONS,
                   hint="detach the projections z1 and z2, not the predictions")
    if not (has["p1"] and has["p2"]):
        missing = [n for n in ("p1", "p2") if not has[n]]
        raise Fail(f"no gradient reached {' and '.join(missing)}", diagnosis=GRAPH_CUT,
                   hint="stay in torch operations from both predictions to the loss")
    if has["z1"] or has["z2"]:
        reached = [n for n in ("z1", "z2") if has[n]]
        raise Fail(f"a gradient reached {' and '.join(reached)}", measured=", ".join(reached),
                   expected="no gradient into z1 or z2")
    return "p1 and p2 get gradients, z1 and z2 none"


@checks.add(
    "works for a batch of one pair (N = 1)",
    diagnosis=SINGLE_PAIR_BREAKS,
    hint="nothing in the loss depends on the batch holding more than one sample",
    crash_means_mistake=True,
)
def single(fn):
    value = value_of(fn, *cross_inputs(1.0, n=1, d=2)).item()
    if not _close(value, -1.0):
        raise Fail(f"one perfect cross pair gave {value:.5f}", measured=f"{value:.5f}",
                   expected="-1", conclusive=False)


def _float64_wrong(value, expected):
    return Fail(f"the loss is float64 but its value is wrong: {value:.6f}",
                measured=f"{value:.15f}", expected=f"{expected:.15f}", conclusive=False)


laws.keeps_float64(checks, expected=-1.0, wrong_value=_float64_wrong,
                   loss=lambda fn, a, b: value_of(fn, a, b, b.clone(), a.clone()))


def _stored_value(case, loss):
    laws.check_stored(loss, case["loss"], f"N={len(case['p1'])}, D={len(case['p1'][0])}")


def _stored_case(case):
    # The projections require grad too, so that a loss which detaches the predictions instead
    # still requires grad and is named for where its gradient went.
    leaves = {n: torch.tensor(case[n], dtype=torch.float64, requires_grad=True) for n in NAMES}
    return tuple(leaves.values()), {n: leaves[n] for n in ("p1", "p2")}


def _missing(fn, missing, args, case):
    reached = any(t.grad is not None and bool(t.grad.abs().max() > 0) for t in args[2:])
    return STOP_ON_PREDICTIONS if reached else GRAPH_CUT


laws.known_answers(
    checks, cases=lambda: load_cases("simsiam_loss"), build=_stored_case, loss=value_of,
    check_value=_stored_value, where=lambda case: f"N={len(case['p1'])}",
    missing_mistake=_missing,
    hint="if the other checks pass, compare the reduction over the batch and the two halves")

