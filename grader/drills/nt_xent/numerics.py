"""`nt_xent_loss`, part 2: gradients, small temperatures, float64, N = 1 and known answers."""

from __future__ import annotations

import math

import torch

from ...data import load_cases
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.lookup import fail_naming, which_mistake
from ...kit.mistakes import GRAPH_CUT
from ...sandbox import Fail
from . import _mistakes as M
from ._common import call, checks
from ._common import loss_of as _loss

laws.gradients_reach(
    checks, "gradients reach both views", diagnosis=GRAPH_CUT,
    hint="stay in torch operations from the inputs to the returned loss", loss=_loss,
    leaves=lambda: {"z1": _randn(5, 8, seed=14).requires_grad_(True),
                    "z2": _randn(5, 8, seed=15).requires_grad_(True)},
    mistake=lambda fn, missing, leaves: (
        M.detached(missing), "remove any detach or no-grad block around either view: the "
        "gradient must reach both"))


@checks.add(
    "gradients reach an encoder's backbone",
    diagnosis="the gradient does not reach the encoder: the loss is cut off from the network",
    hint="the loss must be a differentiable function of the projections z, the head's output "
    "on the backbone's output",
    rng_allowed=True,  # the check seeds the network's initialisation itself
)
def gradients_backbone(fn):
    torch.manual_seed(0)  # network initialisation only; the state is restored after the check
    backbone = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU())
    head = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x = _randn(8, 6, seed=16)
    x1, x2 = x + 0.1 * _randn(8, 6, seed=17), x + 0.1 * _randn(8, 6, seed=18)
    loss = _loss(fn, head(backbone(x1)), head(backbone(x2)))
    if not loss.requires_grad:
        raise Fail("the returned loss does not require grad", diagnosis=GRAPH_CUT)
    loss.backward()
    g = backbone[0].weight.grad
    if g is None or g.abs().max() == 0 or not torch.isfinite(g).all():
        raise Fail("the backbone's first layer received no useful gradient")


laws.finite_at_extreme(
    checks, "stays finite at temperature 0.01", seeds=(19, 20), where="tau = 0.01",
    diagnosis="exp(similarity / tau) overflows float32 at small tau (exp(100) > 3.4e38)",
    hint="compute log-softmax with the log-sum-exp trick, e.g. via F.cross_entropy",
    call=lambda fn, z1, z2: call(fn, z1, z2, temperature=0.01))


def _collapsed_float64_wrong(value, expected):
    """Off by far more than float32 rounding: the value is wrong, not the precision."""
    n = 5
    return fail_naming(
        f"the loss is float64 but its value is wrong: a collapsed float64 batch of N={n} "
        f"gave {value:.6f}, not log({2 * n - 1})",
        which_mistake(value, M.collapsed_signatures(n, 0.5)), hints=M.HINTS,
        measured=f"{value:.15f}", expected=f"{expected:.15f}")


laws.keeps_float64(checks, loss=lambda fn, z1, z2: _loss(fn, z1, z2, 0.5),
                   expected=math.log(2 * 5 - 1), wrong_value=_collapsed_float64_wrong)


def _single_pair_wrong(value, z1, z2):
    # It ran, so the single pair did not break it; a known wrong value names the mistake, any
    # other only says that the loss is wrong here.
    return fail_naming(
        f"N = 1 ran but gave {value:.5f}; it should give exactly 0: the partner is the only "
        "candidate", which_mistake(value, M.single_pair_signatures(z1, z2, 0.5)),
        hints=M.HINTS, measured=f"{value:.5f}", expected="0")


laws.single_pair(
    checks, loss=_loss, seeds=(21, 22), wrong_value=_single_pair_wrong,
    hint="with a single pair the partner is the only candidate left, so the loss is exactly 0")


def _stored_value(case, loss):
    laws.check_stored(loss, case["loss"], f"N={len(case['z1'])}, D={len(case['z1'][0])}, "
                      f"tau={case['temperature']}")


def _stored_case(case):
    z1, z2 = (torch.tensor(case[name], dtype=torch.float64, requires_grad=True)
              for name in ("z1", "z2"))
    return (z1, z2, case["temperature"]), {"z1": z1, "z2": z2}


laws.known_answers(
    checks, cases=lambda: load_cases("nt_xent"), build=_stored_case, loss=_loss,
    check_value=_stored_value, where=lambda case: f"N={len(case['z1'])}, tau={case['temperature']}",
    missing_mistake=lambda fn, missing, args, case: M.detached(missing),
    hint="if the other checks pass, compare the temperature handling and the reduction")
