"""What the drill-07 check modules share: the drill's name, the way the learner is called, and
the batches with a closed form."""

from __future__ import annotations

import torch

from ...data import load_cases
from ...kit import laws
from ...kit.mistakes import FLOAT32, FLOAT32_HINT, GRAPH_CUT
from ...kit.mistakes import call_naming_in_place as call
from ...kit.mistakes import loss_of as value_of
from ...sandbox import Fail, scalar

DRILL = "07_barlow_vicreg"

N = 8  # the batch of the closed-form inputs: eight rows, the rows of an 8 x 8 Hadamard matrix

VIEW_DETACHED = ("a view is detached: neither Barlow Twins nor VICReg has a stop-gradient, both "
                 "views must receive a gradient")
NO_EPS = ("the variance has no epsilon under the square root: a dimension that is constant over "
          "the batch (variance 0) divides by zero")


def finite_value_of(fn, *args, where, **kwargs):
    """The loss, where a NaN or an infinity is the missing epsilon rather than a generic
    overflow (the input has a dimension with no spread)."""
    out = call(fn, *args, **kwargs)
    if isinstance(out, torch.Tensor) and out.dim() == 0 and not torch.isfinite(out):
        raise Fail(f"{where}: the loss is {out.item()}", diagnosis=NO_EPS,
                   hint="add the epsilon to the variance before the square root, as batch "
                   "normalisation does", measured=str(out.item()), expected="a finite loss")
    return scalar(out)


def hadamard(*columns, dtype=torch.float32) -> torch.Tensor:
    """Columns of the 8 x 8 Sylvester-Hadamard matrix (entries +-1): column k of row r is
    (-1)^popcount(r & k). Columns 1 to 7 have mean 0 and biased variance 1 over the 8 rows, and
    any two of them are orthogonal, so their batch statistics are exact."""
    rows = torch.arange(N)
    out = []
    for k in columns:
        bits = torch.zeros(N, dtype=torch.long)
        for b in range(3):
            bits += ((rows >> b) & 1) * ((k >> b) & 1)
        out.append(1 - 2 * (bits % 2))
    return torch.stack(out, dim=1).to(dtype)


def gradients_reach_both(fn, z1, z2, **kwargs):
    """Fail naming the stop-gradient when a loss sends no gradient to one of the views."""
    z1, z2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    out = value_of(fn, z1, z2, **kwargs)
    if not out.requires_grad:
        raise Fail("the returned loss does not require grad", diagnosis=GRAPH_CUT,
                   hint="stay in torch operations from the inputs to the loss")
    out.backward()
    cut = [name for name, t in (("z1", z1), ("z2", z2))
           if t.grad is None or not t.grad.abs().max() > 0]
    if len(cut) == 2:
        raise Fail("no gradient reached either view", diagnosis=GRAPH_CUT,
                   hint="stay in torch operations from the inputs to the loss")
    if cut:
        raise Fail(f"no gradient reached {cut[0]}", measured=f"grad {cut[0]}: none",
                   expected="a gradient for both views")
    return "both views get a gradient"


def add_float64_check(checks, *, inputs, expected, what, rounding, float32_band):
    """float64 inputs with a closed-form loss `expected` must give a float64 loss within
    `rounding` of it; an error beyond that but within `float32_band` (what float32 rounding
    gives on these inputs) is that mistake, a larger one a wrong value."""

    @checks.add("float64 in, float64 out, to float64 precision", diagnosis=FLOAT32,
                hint=FLOAT32_HINT)
    def keeps_float64(fn):
        out = value_of(fn, *inputs())
        if out.dtype != torch.float64:
            raise Fail(f"float64 inputs gave a {out.dtype} loss", measured=out.dtype,
                       expected="torch.float64")
        error = abs(out.item() - expected)
        if rounding < error <= float32_band:
            raise Fail(f"{what} in float64 is off by more than float64 rounding",
                       measured=f"{out.item():.15f}", expected=f"{expected:.15f}")
        if error > rounding:
            raise Fail(f"the loss is float64 but its value is wrong: {out.item():.6f}",
                       measured=f"{out.item():.15f}", expected=f"{expected:.15f}",
                       conclusive=False)
        return "float64"

    return keeps_float64


def add_known_answers(checks, name, *, settings, hint):
    """The stored cases of grader/data/<name>.json: `settings(case)` gives the arguments after
    z1 and z2 and the words that name them; a gradient that reaches one view only is the
    stop-gradient mistake."""

    def check_value(case, loss):
        laws.check_stored(loss, case["loss"], f"N={len(case['z1'])}, D={len(case['z1'][0])}, "
                          f"{settings(case)[1]}")

    def build(case):
        z1 = torch.tensor(case["z1"], dtype=torch.float64, requires_grad=True)
        z2 = torch.tensor(case["z2"], dtype=torch.float64, requires_grad=True)
        return (z1, z2, *settings(case)[0]), {"z1": z1, "z2": z2}

    laws.known_answers(
        checks, cases=lambda: load_cases(name), build=build, loss=value_of,
        check_value=check_value, where=lambda case: f"N={len(case['z1'])}",
        missing_mistake=lambda fn, missing, args, case: (
            VIEW_DETACHED if len(missing) == 1 else GRAPH_CUT),
        hint=hint)
