"""`barlow_twins_loss(z1, z2, lambd=5e-3)`: Barlow Twins' loss. Each view is normalised per
dimension over the batch (batch normalisation without affine parameters: biased variance, eps
1e-5 under the square root), C = z1n.T @ z2n / N is the D x D cross-correlation matrix, and the
loss sum((1 - C_ii)^2) + lambd * sum over i != j of C_ij^2 pulls C towards the identity."""

from __future__ import annotations

import math

import torch

from ...checks import checklist
from ...inputs import close as _close
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.lookup import which_mistake
from ...kit.mistakes import IN_PLACE
from ...sandbox import Fail
from ._common import (
    DRILL,
    NO_EPS,
    VIEW_DETACHED,
    N,
    add_float64_check,
    add_known_answers,
    finite_value_of,
    gradients_reach_both,
    hadamard,
    value_of,
)

checks = checklist("barlow_twins_loss", drill=DRILL,
                   smoke=lambda fn: fn(hadamard(1, 2), hadamard(1, 2)))

EPS = 1e-5
LAMBD = 5e-3
C = 1 / (1 + EPS)  # a unit-variance column normalised by sqrt(1 + eps), times another such

PAPER_STD = ("each view is divided by its unbiased standard deviation (torch's default .std(), as "
             "in the paper's pseudo-code): the contract normalises as batch normalisation does, "
             "with the biased variance (divided by N) and eps 1e-5 under the square root")
BY_N_MINUS_1 = ("the cross-correlation is divided by N - 1 instead of N: with the biased "
                "variance each normalised column has mean square 1, so C_ii = 1 needs / N")
NOT_BY_N = "the cross-correlation z1n.T @ z2n is not divided by the batch size N"
ROWS_NORMALISED = ("each embedding is L2-normalised along its features (as in SimCLR) instead of "
                   "each dimension standardised over the batch")
PER_SAMPLE = ("the standardisation runs over the feature axis (dim=1), per sample, instead of "
              "over the batch (dim=0), per dimension")
SAMPLE_MATRIX = ("the matrix is N x N (z1n @ z2n.T, sample against sample) instead of D x D "
                 "(z1n.T @ z2n, dimension against dimension)")
LAMBDA_SWAPPED = ("lambd weighs the diagonal (invariance) term instead of the off-diagonal "
                  "(redundancy) term")
NO_LAMBDA = "the off-diagonal term is not multiplied by lambd"
LAMBDA_ON_ALL = ("the redundancy term sums the squares of every entry of C, the diagonal "
                 "included, instead of the off-diagonal ones only")
MEANS = ("the two terms are averaged over their entries instead of summed: the loss is a sum "
         "over the D diagonal and the D(D - 1) off-diagonal entries")
DIAG_NOT_SQUARED = "the invariance term sums 1 - C_ii (or its absolute value) without squaring it"
OFF_NOT_SQUARED = ("the redundancy term sums the off-diagonal entries (or their absolute "
                   "values) without squaring them")
LAMBDA_IGNORED = "the lambd argument is ignored: the off-diagonal weight is fixed inside"
OFFICIAL_DEFAULT = ("the default lambd is 0.0051 (the paper's released code) instead of the "
                    "contract's 5e-3")
NOT_CENTRED = "the embeddings are not centred: the batch mean of each dimension is not subtracted"
NOT_SCALED = ("the embeddings are centred but not divided by their standard deviation, so C is a "
              "covariance, not a correlation")
JOINT_STATISTICS = ("the two views are normalised with statistics pooled over both batches: each "
                    "view is normalised with its own mean and variance")
EPS_ON_STD = ("the epsilon is added to the standard deviation instead of to the variance under "
              "the square root (batch normalisation divides by sqrt(var + eps))")

_HINTS = {
    PAPER_STD: "batch normalisation uses the variance with N in the denominator, and the eps "
    "goes inside the square root",
    BY_N_MINUS_1: "with the biased variance, a column's mean square after normalising is one: "
    "divide the product by the batch size",
    NOT_BY_N: "the cross-correlation is an average over the batch",
    ROWS_NORMALISED: "Barlow Twins standardises each dimension over the batch, not each "
    "embedding to unit length",
    PER_SAMPLE: "the statistics are taken over the batch axis, one mean and one variance per "
    "dimension",
    SAMPLE_MATRIX: "the matrix compares dimensions with dimensions: its size is D by D",
    LAMBDA_SWAPPED: "the weight belongs on the redundancy term, the off-diagonal one",
    NO_LAMBDA: "the redundancy term carries the weight lambd",
    LAMBDA_ON_ALL: "the redundancy term leaves out the diagonal, which the invariance term owns",
    MEANS: "both terms are sums over their entries",
    DIAG_NOT_SQUARED: "each diagonal entry's distance from one is squared",
    OFF_NOT_SQUARED: "each off-diagonal entry is squared",
    LAMBDA_IGNORED: "use the argument lambd as the weight of the redundancy term",
    OFFICIAL_DEFAULT: "the contract's default is five thousandths",
    NOT_CENTRED: "subtract each dimension's batch mean before dividing",
    NOT_SCALED: "after centring, divide each dimension by its batch standard deviation",
    JOINT_STATISTICS: "normalise each view on its own: its own mean and its own variance",
    EPS_ON_STD: "the eps goes under the square root, with the variance",
    NO_EPS: "add the epsilon to the variance before the square root, as batch normalisation does",
}


def identical():
    """Both views equal, three uncorrelated unit-variance columns: C = I / (1 + eps)."""
    a = hadamard(1, 2, 4)
    return a, a.clone()


def swapped_and_flipped(dtype=torch.float32):
    """z2 holds z1's first two columns swapped and its third negated, so that C is
    [[0, 1, 0], [1, 0, 0], [0, 0, -1]] / (1 + eps): the invariance term is 2 + (1 + c)^2 and
    the redundancy term 2 c^2."""
    a = hadamard(1, 2, 4, dtype=dtype)
    return a, torch.stack([a[:, 1], a[:, 0], -a[:, 2]], dim=1)


def rotated(dtype=torch.float32):
    """z2 holds z1's first two columns rotated by 45 degrees, so that C is
    [[a, a, 0], [a, -a, 0], [0, 0, c]] with a = c / sqrt(2): off-diagonal entries that are not
    +-1, whose squares and absolute values differ."""
    a = hadamard(1, 2, 4, dtype=dtype)
    r = math.sqrt(0.5)
    return a, torch.stack([r * (a[:, 0] + a[:, 1]), r * (a[:, 0] - a[:, 1]), a[:, 2]], dim=1)


_A = C * math.sqrt(0.5)
_ROTATED_INV = 2 + 2 * _A * _A + (1 - C) ** 2


def _swapped_value(s, lambd=LAMBD):
    """The loss of swapped_and_flipped() when C is s times its pattern."""
    return 2 + (1 + s) ** 2 + lambd * 2 * s * s


def _signatures(kind, lambd=LAMBD) -> list:
    """What the classic mistakes give on `kind` ("identical" or "swapped"), most specific first.
    The N x N and per-sample values were computed once from their definitions on these inputs
    (lambd 5e-3) and are stored here as numbers."""
    if kind == "identical":
        return [(3 * (1 - 7 / 8) ** 2, PAPER_STD), (3 * (1 - 8 / 7 * C) ** 2, BY_N_MINUS_1),
                (3 * (1 - 8 * C) ** 2, NOT_BY_N), (3 * (1 - 1 / 3) ** 2, ROWS_NORMALISED),
                (3.134412, SAMPLE_MATRIX), (0.191731, PER_SAMPLE),
                (3 * (1 - C) ** 2 + lambd * 3 * C * C, LAMBDA_ON_ALL),
                (3 * (1 - C), DIAG_NOT_SQUARED)]
    inv, off = 2 + (1 + C) ** 2, 2 * C * C
    return [
        (_swapped_value(7 / 8, lambd), PAPER_STD),
        (_swapped_value(8 / 7 * C, lambd), BY_N_MINUS_1),
        (_swapped_value(8 * C, lambd), NOT_BY_N),
        (_swapped_value(1 / 3, lambd), ROWS_NORMALISED),
        (lambd * inv + off, LAMBDA_SWAPPED),
        (inv + off, NO_LAMBDA),
        (inv + lambd * 3 * C * C, LAMBDA_ON_ALL),
        (inv / 3 + lambd * off / 6, MEANS),
        (3 + C + lambd * off, DIAG_NOT_SQUARED),
        (inv + lambd * 2 * C, OFF_NOT_SQUARED),
        (inv + lambd * -2 * C, OFF_NOT_SQUARED),  # the signed sum: C holds a 1 and a 1, no -1
        *([(10.636842, SAMPLE_MATRIX), (6.846510, PER_SAMPLE)] if lambd == LAMBD else []),
    ]


def _closed_form_right(fn) -> bool:
    """Whether the swapped-and-flipped batch gives its closed form (a learner who fails it has
    that check's diagnosis; later checks then only say they follow from it)."""
    try:
        return _close(value_of(fn, *swapped_and_flipped()).item(), _swapped_value(C))
    except Fail:
        return False


def _follows_if_closed_form_wrong(fn, compute):
    """`compute()`, except that a failure it raises only follows from the headline when the
    closed-form batch is already wrong (the paper's pseudo-code has no epsilon either, say)."""
    try:
        return compute()
    except Fail as failure:
        if failure.diagnosis and not _closed_form_right(fn):
            raise Fail(failure.message, measured=failure.measured, expected=failure.expected,
                       conclusive=False) from None
        raise


laws.returns_scalar(checks, loss=value_of, hint="sum both terms into one number")
laws.leaves_inputs_unchanged(
    checks, run=value_of, diagnosis=IN_PLACE, hint="normalise into new tensors, never in place",
    inputs=lambda: [(3.0 * _randn(6, 4, seed=700) + 1.0, _randn(6, 4, seed=701) - 2.0)])


@checks.add(
    "two identical views with uncorrelated dimensions cost 0 (C is the identity)",
    diagnosis="identical, decorrelated views do not give a loss of 0",
    hint="standardise each dimension over the batch, average the products over the batch: "
    "then identical views give ones on the diagonal",
)
def identity(fn):
    value = value_of(fn, *identical()).item()
    if abs(value) <= 1e-6:
        return "0"
    mistake = which_mistake(value, _signatures("identical"), abs_=1e-6)
    raise Fail(f"z1 = z2 with three uncorrelated unit-variance dimensions (N={N}) gave "
               f"{value:.6f}", diagnosis=mistake, hint=_HINTS.get(mistake),
               measured=f"{value:.6f}", expected="0")


@checks.add(
    "swapped and negated dimensions give C = [[0, 1, 0], [1, 0, 0], [0, 0, -1]]: loss "
    "2 + 4 + 2 lambd",
    diagnosis="a cross-correlation with a closed form gives the wrong loss",
    hint="the invariance term sums the squared distances of the diagonal from one, the "
    "redundancy term lambd times the squared off-diagonal entries",
)
def swapped(fn):
    value = value_of(fn, *swapped_and_flipped()).item()
    expected = _swapped_value(C)
    if _close(value, expected):
        return f"{value:.5f}"
    mistake = which_mistake(value, _signatures("swapped"))
    raise Fail(f"the swapped and negated batch (N={N}, D=3) gave {value:.5f}",
               diagnosis=mistake, hint=_HINTS.get(mistake), measured=f"{value:.5f}",
               expected=f"{expected:.5f}")


@checks.add(
    "a 45-degree rotation between the views gives off-diagonal entries of 1/sqrt(2): loss "
    "3 + lambd",
    diagnosis="a cross-correlation with entries of 1/sqrt(2) gives the wrong loss",
    hint="square every off-diagonal entry before summing",
)
def rotated_views(fn):
    value = value_of(fn, *rotated()).item()
    expected = _ROTATED_INV + LAMBD * 2 * _A * _A
    if _close(value, expected):
        return f"{value:.5f}"
    named = _closed_form_right(fn)
    mistake = which_mistake(value, [(_ROTATED_INV + LAMBD * 2 * _A, OFF_NOT_SQUARED)]) if named \
        else None
    raise Fail(f"the rotated batch (N={N}, D=3) gave {value:.5f}", diagnosis=mistake,
               hint=_HINTS.get(mistake), measured=f"{value:.5f}", expected=f"{expected:.5f}",
               conclusive=named)


@checks.add(
    "uses lambd: lambd = 0.5 weighs the off-diagonal term by 0.5",
    diagnosis=LAMBDA_IGNORED,
    hint=_HINTS[LAMBDA_IGNORED],
)
def uses_lambd(fn):
    value = value_of(fn, *swapped_and_flipped(), lambd=0.5).item()
    expected = _swapped_value(C, 0.5)
    if _close(value, expected):
        return f"{value:.5f}"
    if not _closed_form_right(fn):
        raise Fail(f"lambd = 0.5 gave {value:.5f}", measured=f"{value:.5f}",
                   expected=f"{expected:.5f}", conclusive=False)
    raise Fail(f"lambd = 0.5 gave {value:.5f}, the value of lambd = 5e-3 is "
               f"{_swapped_value(C):.5f}", measured=f"{value:.5f}", expected=f"{expected:.5f}")


@checks.add(
    "the default lambd is 5e-3",
    diagnosis="the default value of lambd differs from the contract's 5e-3",
    hint="keep the signature exactly as the stub gives it",
)
def default_lambd(fn):
    z1, z2 = swapped_and_flipped()
    default, given = value_of(fn, z1, z2).item(), value_of(fn, z1, z2, lambd=LAMBD).item()
    if _close(default, given, rel=1e-6, abs_=1e-7):
        return "5e-3"
    inv, off = 2 + (1 + C) ** 2, 2 * C * C
    implied = (default - inv) / off
    mistake = OFFICIAL_DEFAULT if _close(implied, 0.0051, rel=1e-3) else None
    raise Fail(f"without lambd the loss is {default:.6f}, with lambd=5e-3 {given:.6f}",
               diagnosis=mistake, hint=_HINTS.get(mistake), measured=f"lambd about {implied:.4g}",
               expected="5e-3")


@checks.add(
    "is invariant to shifting and rescaling each dimension of each view (it only sees "
    "correlations)",
    diagnosis="shifting or rescaling a dimension changes the loss",
    hint="standardise each view's dimensions over the batch: subtract the mean, divide by the "
    "standard deviation",
)
def affine_invariance(fn):
    z1, z2 = _randn(16, 5, seed=702), _randn(16, 5, seed=703)
    z2 = 0.6 * z1 + 0.8 * z2  # correlated views, so that C has structure to lose
    shift, scale = _randn(1, 5, seed=704) * 3, torch.linspace(0.4, 3.0, 5)
    base = value_of(fn, z1, z2).item()
    trials = (("adding the same constant to a dimension of both views", NOT_CENTRED,
               z1 + shift, z2 + shift),
              ("scaling a dimension of both views by the same positive factor", NOT_SCALED,
               z1 * scale, z2 * scale),
              ("shifting and scaling the dimensions of z2 only", JOINT_STATISTICS,
               z1, z2 * scale + shift))
    for what, mistake, a, b in trials:
        value = value_of(fn, a, b).item()
        if not _close(value, base, rel=1e-3, abs_=1e-4):
            named = _closed_form_right(fn)
            raise Fail(f"{what} changed the loss from {base:.5f} to {value:.5f}",
                       diagnosis=mistake if named else None,
                       hint=_HINTS[mistake] if named else None, measured=f"{value:.5f}",
                       expected=f"{base:.5f}", conclusive=named)
    return f"{base:.5f} whatever the shifts and scales"


@checks.add(
    "a dimension constant over the batch is finite and normalises to 0 (the epsilon)",
    diagnosis=NO_EPS,
    hint=_HINTS[NO_EPS],
)
def constant_dimension(fn):
    z1, z2 = identical()
    z1 = torch.cat([z1[:, :2], torch.full((N, 1), 3.0)], dim=1)
    # The constant dimension normalises to 0, so C_33 = 0: it costs (1 - 0)^2 = 1, the two
    # other dimensions (1 - c)^2 each, and there is nothing off the diagonal.
    value = _follows_if_closed_form_wrong(
        fn, lambda: finite_value_of(fn, z1, z2, where="a constant third dimension").item())
    expected = 1 + 2 * (1 - C) ** 2
    if not _close(value, expected):
        raise Fail(f"a constant third dimension in z1 gave {value:.6f}", measured=f"{value:.6f}",
                   expected=f"{expected:.6f}", conclusive=False)
    return f"{value:.5f}"


@checks.add(
    "a dimension with little spread is normalised by sqrt(var + 1e-5), as batch norm does",
    diagnosis="a dimension with a small variance is normalised differently from batch norm",
    hint=_HINTS[EPS_ON_STD],
)
def small_variance(fn):
    z1, z2 = identical()
    z1 = torch.cat([z1[:, :2], 1e-3 * z1[:, 2:]], dim=1)  # biased variance 1e-6
    value = _follows_if_closed_form_wrong(
        fn, lambda: finite_value_of(fn, z1, z2, where="a dimension with variance 1e-6").item())
    shrink = 1e-3 / math.sqrt(1e-6 + EPS) / math.sqrt(1 + EPS)  # C_33, about 0.30
    expected = 2 * (1 - C) ** 2 + (1 - shrink) ** 2
    if _close(value, expected):
        return f"{value:.5f}: C_33 = {shrink:.3f}"
    on_std = 1e-3 / (1e-3 + EPS) / (1 + EPS)
    mistake = which_mistake(value, [((1 - on_std) ** 2, EPS_ON_STD), (0.0, NO_EPS)],
                            abs_=3e-6)
    raise Fail(f"a third dimension of variance 1e-6 gave {value:.6f}", diagnosis=mistake,
               hint=_HINTS.get(mistake), measured=f"{value:.6f}", expected=f"{expected:.6f}",
               conclusive=mistake is not None)


@checks.add(
    "the gradient reaches both views (no stop-gradient)",
    diagnosis=VIEW_DETACHED,
    hint="Barlow Twins is symmetric: keep both views in the graph",
)
def both_views(fn):
    z1, z2 = _randn(8, 4, seed=705), _randn(8, 4, seed=706)
    return gradients_reach_both(fn, z1, 0.5 * z1 + z2)


add_float64_check(checks, inputs=lambda: rotated(torch.float64),
                  expected=_ROTATED_INV + LAMBD * 2 * _A * _A, what="the rotated batch",
                  rounding=1e-12, float32_band=1e-5)
add_known_answers(
    checks, "barlow_twins_loss", settings=lambda case: ((case["lambd"],),
                                                        f"lambd={case['lambd']}"),
    hint="if the other checks pass, compare the normalisation with batch norm's, step by step")
