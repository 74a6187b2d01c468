"""`vicreg_loss(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0)`: VICReg's loss, three terms
on the batch of embeddings: invariance (the mean squared error between the views), variance (a
hinge that keeps each dimension's standard deviation over the batch at 1 or more), covariance
(the off-diagonal entries of each view's covariance matrix pushed to 0)."""

from __future__ import annotations

import math

import torch

from ...checks import checklist
from ...inputs import close as _close
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.lookup import which_mistake
from ...kit.mistakes import GRAPH_CUT, IN_PLACE
from ...sandbox import Fail, scalar
from ._common import (
    DRILL,
    VIEW_DETACHED,
    N,
    add_float64_check,
    add_known_answers,
    call,
    gradients_reach_both,
    hadamard,
    value_of,
)

checks = checklist("vicreg_loss", drill=DRILL,
                   smoke=lambda fn: fn(hadamard(1, 2), hadamard(1, 2)))

Q = N / (N - 1)  # the unbiased variance of a Hadamard column (its biased variance is 1)

ONLY = {"invariance": dict(sim_coeff=1.0, std_coeff=0.0, cov_coeff=0.0),
        "variance": dict(sim_coeff=0.0, std_coeff=1.0, cov_coeff=0.0),
        "covariance": dict(sim_coeff=0.0, std_coeff=0.0, cov_coeff=1.0)}

COEFFS_IGNORED = ("the coefficients are ignored: sim_coeff, std_coeff and cov_coeff must weigh "
                  "the three terms (zeroing two of them leaves the third alone)")
MSE_SUMMED_OVER_D = ("the invariance term sums the squared differences over the dimensions "
                     "before averaging over the batch: the mean squared error averages over all "
                     "N x D entries")
MSE_SUMMED = "the invariance term sums the squared differences instead of averaging them"
DISTANCE = ("the invariance term averages the distances between the views instead of their "
            "squared differences")
BIASED_VARIANCE = ("the variance is the biased one (divided by N): VICReg's variance and "
                   "covariance are unbiased (divided by N - 1)")
HINGE_ON_VARIANCE = ("the hinge is applied to the variance instead of the standard deviation: "
                     "relu(1 - std), with std the square root of the variance plus 1e-4")
NO_HINGE = ("the relu of the hinge is missing: a dimension whose spread is already above 1 "
            "gives a negative term that rewards spreading further")
VIEWS_SUMMED = "the variance terms of the two views are summed instead of averaged"
DIMS_SUMMED = "the variance hinge is summed over the dimensions instead of averaged"
VAR_NO_EPS = ("the standard deviation has no epsilon: the square root of a variance of 0 has an "
              "infinite slope, so a collapsed dimension gives a NaN gradient")
COV_BIASED = ("the covariance is divided by N instead of N - 1 (VICReg's covariance is the "
              "unbiased one)")
NOT_CENTRED = ("the covariance is not centred: the batch mean of each dimension must be "
               "subtracted first")
NOT_BY_D = "the covariance term is not divided by the dimension D"
BY_D_SQUARED = "the covariance term is divided by D x D instead of D"
BY_PAIRS = "the covariance term is divided by D(D - 1), the number of off-diagonal pairs, not by D"
COV_VIEWS_AVERAGED = "the covariance terms of the two views are averaged instead of summed"
DIAGONAL_INCLUDED = ("the covariance term includes the diagonal (the variances): only the "
                     "off-diagonal entries are penalised")
CROSS_COVARIANCE = ("the covariance is taken between the two views (z1 against z2) instead of "
                    "within each view")
ONE_VIEW = "the covariance term covers one view only: it is summed over both"
DEFAULTS_WRONG = ("the default coefficients differ from the contract's sim_coeff 25, std_coeff 25 "
                  "and cov_coeff 1")

_HINTS = {
    COEFFS_IGNORED: "multiply each term by its own argument",
    MSE_SUMMED_OVER_D: "the invariance term is the plain mean squared error of the two batches",
    MSE_SUMMED: "the invariance term is a mean over every entry",
    DISTANCE: "compare the views entry by entry and square the differences",
    BIASED_VARIANCE: "divide the summed squared deviations by one less than the batch size",
    HINGE_ON_VARIANCE: "the hinge compares the standard deviation with one",
    NO_HINGE: "only a spread below one is penalised: clip the hinge at zero",
    VIEWS_SUMMED: "average the two views' variance terms",
    DIMS_SUMMED: "average the hinge over the dimensions",
    VAR_NO_EPS: "add a small constant to the variance before the square root",
    COV_BIASED: "divide by one less than the batch size",
    NOT_CENTRED: "subtract each dimension's batch mean before the product",
    NOT_BY_D: "the summed squares are divided by the number of dimensions",
    BY_D_SQUARED: "divide by the number of dimensions once",
    BY_PAIRS: "divide by the number of dimensions",
    COV_VIEWS_AVERAGED: "add the two views' covariance terms",
    DIAGONAL_INCLUDED: "leave the diagonal out: the variance term already governs it",
    CROSS_COVARIANCE: "each view's covariance is its own dimensions against each other",
    ONE_VIEW: "compute the term for each view and add them",
    DEFAULTS_WRONG: "keep the signature exactly as the stub gives it",
}


def _hinge(var):
    return max(0.0, 1 - math.sqrt(var + 1e-4))


def invariance_inputs():
    """z2 = z1 + 0.5: the mean squared error is 0.25, each dimension's spread is above 1 and
    the dimensions are uncorrelated, so the other two terms are 0."""
    a = hadamard(1, 2, 4)
    return a, a + 0.5


def variance_inputs():
    """z1 = 0.1 x (three uncorrelated columns), z2 = 2 x the same: z1's spread is far below 1,
    z2's above it."""
    a = hadamard(1, 2, 4)
    return 0.1 * a, 2.0 * a


def covariance_inputs(dtype=torch.float32):
    """z1: four columns, the first two equal, shifted by 1; z2: four columns, the first two
    equal, scaled by 0.5. Every other pair of columns, within and across the views, is
    uncorrelated."""
    h = hadamard(1, 1, 2, 4, 3, 3, 5, 6, dtype=dtype)
    return h[:, :4] + 1.0, 0.5 * h[:, 4:]


# The covariance matrices of covariance_inputs(): one off-diagonal pair (two entries) per view,
# Q for z1 and Q / 4 for z2; the diagonals are Q (z1) and Q / 4 (z2), D = 4.
_A1, _A2, _D = 2 * Q * Q, 2 * (Q / 4) ** 2, 4
_COV = (_A1 + _A2) / _D
_VAR_Z2 = _hinge(Q / 4) / 2  # the variance term of covariance_inputs(): z1's spread is above 1
_MSE_COV = 2.25  # the mean squared error of covariance_inputs() (means 1 and 0, squares 1, 1/4)
_TOTAL = 25 * _MSE_COV + 25 * _VAR_Z2 + _COV


def _signatures(term):
    if term == "invariance":
        return [(6.25, COEFFS_IGNORED), (0.75, MSE_SUMMED_OVER_D), (6.0, MSE_SUMMED),
                (0.5 * math.sqrt(3), DISTANCE)]
    if term == "variance":
        total = 25 * 1.9 ** 2 + 25 * _hinge(0.01 * Q) / 2
        return [(total, COEFFS_IGNORED),
                ((1 - math.sqrt(0.01 + 1e-4)) / 2, BIASED_VARIANCE),
                ((1 - 0.01 * Q) / 2, HINGE_ON_VARIANCE),
                ((_hinge(0.01 * Q) + 1 - math.sqrt(4 * Q + 1e-4)) / 2, NO_HINGE),
                (_hinge(0.01 * Q), VIEWS_SUMMED), (3 * _hinge(0.01 * Q) / 2, DIMS_SUMMED),
                ((1 - math.sqrt(0.01 * Q)) / 2, VAR_NO_EPS)]
    uncentred = (2 * (2 * Q) ** 2 + 10 * Q * Q) / _D + _A2 / _D  # z1's mean is 1: entries + Q
    return [(_TOTAL, COEFFS_IGNORED), ((_A1 + _A2) / Q / Q / _D, COV_BIASED),
            (uncentred, NOT_CENTRED), (_A1 + _A2, NOT_BY_D), (_COV / _D, BY_D_SQUARED),
            (_COV / (_D - 1), BY_PAIRS), (_COV / 2, COV_VIEWS_AVERAGED),
            (_COV + 4 * (Q * Q + (Q / 4) ** 2) / _D, DIAGONAL_INCLUDED),
            (0.0, CROSS_COVARIANCE), (_A1 / _D, ONE_VIEW), (_A2 / _D, ONE_VIEW)]


_EXPECTED = {"invariance": (invariance_inputs, 0.25),
             "variance": (variance_inputs, _hinge(0.01 * Q) / 2),
             "covariance": (covariance_inputs, _COV)}

laws.returns_scalar(checks, loss=value_of, hint="add the three weighted terms into one number")
laws.leaves_inputs_unchanged(
    checks, run=value_of, diagnosis=IN_PLACE, hint="centre into new tensors, never in place",
    inputs=lambda: [(3.0 * _randn(6, 4, seed=710) + 1.0, _randn(6, 4, seed=711) - 2.0)])


def _term_check(term, title, hint):
    @checks.add(title, diagnosis=f"the {term} term alone gives the wrong value", hint=hint)
    def term_check(fn):
        make, expected = _EXPECTED[term]
        value = value_of(fn, *make(), **ONLY[term]).item()
        if _close(value, expected):
            return f"{value:.5f}"
        mistake = which_mistake(value, _signatures(term))
        weights = ", ".join(f"{k}={v:g}" for k, v in ONLY[term].items())
        raise Fail(f"the {term} term alone ({weights}) gave {value:.5f}", diagnosis=mistake,
                   hint=_HINTS.get(mistake), measured=f"{value:.5f}", expected=f"{expected:.5f}")

    term_check.__name__ = f"{term}_term"
    return term_check


def _term_right(fn, term) -> bool:
    make, expected = _EXPECTED[term]
    try:
        return _close(value_of(fn, *make(), **ONLY[term]).item(), expected)
    except Fail:
        return False


_term_check("invariance", "the invariance term alone: views 0.5 apart in every entry give a "
            "mean squared error of 0.25", "the mean of the squared differences over every entry")
_term_check("variance", "the variance term alone: a view with spread 0.1 is pushed up, a view "
            "with spread 2 is left alone", "per dimension, the hinge of one minus the unbiased "
            "standard deviation, averaged over dimensions and over the two views")
_term_check("covariance", "the covariance term alone: two equal columns in each view are "
            "penalised, whatever the views' means", "per view, the off-diagonal squares of the "
            "centred, unbiased covariance, summed, divided by D; then the two views added")


@checks.add(
    "the default coefficients are 25, 25 and 1",
    diagnosis=DEFAULTS_WRONG,
    hint=_HINTS[DEFAULTS_WRONG],
)
def defaults(fn):
    value = value_of(fn, *covariance_inputs()).item()
    if _close(value, _TOTAL):
        return f"{value:.4f}"
    swapped = 25 * _MSE_COV + _VAR_Z2 + 25 * _COV
    # A wrong term is its own check's diagnosis: the defaults are only to blame when each term
    # alone is right.
    named = all(_term_right(fn, term) for term in ONLY)
    raise Fail(f"the default call gave {value:.4f}", measured=f"{value:.4f}",
               expected=f"{_TOTAL:.4f}" + (" (std_coeff and cov_coeff swapped give that)"
                                           if _close(value, swapped) else ""),
               conclusive=named, **({} if named else {"diagnosis": None}))


@checks.add(
    "a collapsed batch (every row equal) gives 25 x 0.99 and finite gradients",
    diagnosis="a collapsed batch does not give the variance hinge's value with a finite gradient",
    hint=_HINTS[VAR_NO_EPS],
)
def collapsed(fn):
    z1 = torch.tensor([[1.0, -2.0, 0.5]]).repeat(N, 1).requires_grad_(True)
    z2 = z1.detach().clone().requires_grad_(True)
    out = scalar(call(fn, z1, z2))
    expected = 25 * (1 - math.sqrt(1e-4))
    if not _close(out.item(), expected):
        named = _term_right(fn, "variance")
        mistake = VAR_NO_EPS if named and _close(out.item(), 25.0) else None
        raise Fail(f"a collapsed batch gave {out.item():.5f}", diagnosis=mistake,
                   hint=_HINTS.get(mistake), measured=f"{out.item():.5f}",
                   expected=f"{expected:.5f}", conclusive=mistake is not None)
    if not out.requires_grad:
        raise Fail("the returned loss does not require grad", diagnosis=GRAPH_CUT,
                   hint="stay in torch operations from the inputs to the loss")
    out.backward()
    for name, t in (("z1", z1), ("z2", z2)):
        if t.grad is not None and not torch.isfinite(t.grad).all():
            raise Fail(f"the gradient with respect to {name} has NaN or inf at collapse",
                       diagnosis=VAR_NO_EPS, hint=_HINTS[VAR_NO_EPS],
                       measured="NaN or inf", expected="finite")
    return f"{out.item():.4f}, finite gradients"


@checks.add(
    "the gradient reaches both views (no stop-gradient)",
    diagnosis=VIEW_DETACHED,
    hint="VICReg is symmetric: keep both views in the graph",
)
def both_views(fn):
    z1, z2 = _randn(8, 4, seed=712), _randn(8, 4, seed=713)
    return gradients_reach_both(fn, z1, 0.5 * z1 + z2)


add_float64_check(checks, inputs=lambda: covariance_inputs(torch.float64), expected=_TOTAL,
                  what="a batch with a closed form", rounding=1e-11,
                  float32_band=1e-4)
add_known_answers(
    checks, "vicreg_loss", settings=lambda case: (tuple(case["coeffs"]),
                                                  f"coefficients {case['coeffs']}"),
    hint="if the other checks pass, compare each term's normalisation: the batch divisor, the "
    "dimension, the two views")
