"""`nt_xent_loss`, part 2: gradients, small temperatures, float64, N = 1 and known answers."""

from __future__ import annotations

import math

import torch

from ...data import load_cases
from ...inputs import close as _close
from ...inputs import randn as _randn
from ...sandbox import Fail, scalar
from . import _mistakes as M
from ._common import call, checks
from ._common import loss_of as _loss


@checks.add(
    "gradients reach both views",
    diagnosis=M.GRAPH_CUT,
    hint="stay in torch operations from the inputs to the returned loss",
)
def gradients_both(fn):
    z1 = _randn(5, 8, seed=14).requires_grad_(True)
    z2 = _randn(5, 8, seed=15).requires_grad_(True)
    loss = _loss(fn, z1, z2)
    if not loss.requires_grad:
        raise Fail("the returned loss does not require grad")
    loss.backward()
    missing = [name for name, z in (("z1", z1), ("z2", z2)) if z.grad is None
               or not torch.isfinite(z.grad).all() or z.grad.abs().max() == 0]
    if missing:
        raise Fail(
            f"no useful gradient reached {' and '.join(missing)}",
            diagnosis=M.detached(missing),
            hint="remove .detach() / torch.no_grad() around either view",
        )


@checks.add(
    "gradients reach an encoder's backbone",
    diagnosis="the gradient does not reach the encoder: the loss is cut off from the network",
    hint="the loss must be a differentiable function of the projections z = g(f(x))",
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
        raise Fail("the returned loss does not require grad", diagnosis=M.GRAPH_CUT)
    loss.backward()
    g = backbone[0].weight.grad
    if g is None or g.abs().max() == 0 or not torch.isfinite(g).all():
        raise Fail("the backbone's first layer received no useful gradient")


@checks.add(
    "stays finite at temperature 0.01",
    diagnosis="exp(similarity / tau) overflows float32 at small tau (exp(100) > 3.4e38)",
    hint="compute log-softmax with the log-sum-exp trick, e.g. via F.cross_entropy",
)
def finite_low_temperature(fn):
    z1 = _randn(8, 16, seed=19)
    z2 = (z1 + 0.01 * _randn(8, 16, seed=20)).requires_grad_(True)
    out = call(fn, z1, z2, temperature=0.01)
    if isinstance(out, torch.Tensor) and out.dim() == 0 and not torch.isfinite(out):
        raise Fail(f"the loss is {out.item()} at tau = 0.01", measured=out.item(),
                   expected="a finite number")
    loss = scalar(out)
    if loss.requires_grad:
        loss.backward()
        if not torch.isfinite(z2.grad).all():
            raise Fail("the gradient has NaN or inf at tau = 0.01")
    return f"loss = {loss.item():.4f}"


@checks.add(
    "float64 in, float64 out, to float64 precision",
    diagnosis=M.FLOAT32,
    hint="create helper tensors with the inputs' dtype and device",
)
def keeps_float64(fn):
    n = 5
    z = torch.ones(n, 3, dtype=torch.float64)
    z[:, 1] = 1e-9 * torch.arange(n, dtype=torch.float64)  # too small for float32 to see
    out = _loss(fn, z, z.clone(), 0.5)
    if out.dtype != torch.float64:
        raise Fail(f"float64 inputs gave a {out.dtype} loss", measured=out.dtype,
                   expected="torch.float64")
    value, expected = out.item(), math.log(2 * n - 1)
    if abs(value - expected) > 1e-12:
        if abs(value - expected) <= 1e-5:  # right to float32 precision only: the drop itself
            raise Fail(
                "a collapsed float64 batch is off by more than float64 rounding",
                measured=f"{value:.15f}",
                expected=f"{expected:.15f}",
            )
        # Off by far more than float32 rounding: the value is wrong, not the precision.
        mistake = M.recognise(value, M.collapsed_signatures(n, 0.5), _close)
        raise Fail(
            f"the loss is float64 but its value is wrong: a collapsed float64 batch of N={n} "
            f"gave {value:.6f}, not log({2 * n - 1})",
            measured=f"{value:.15f}",
            expected=f"{expected:.15f}",
            diagnosis=mistake,
            hint=M.HINTS.get(mistake),
            conclusive=mistake is not None,
        )


@checks.add(
    "works for a batch of one pair (N = 1)",
    diagnosis="a batch with a single pair breaks the code (a .squeeze(), or a shape assumed "
    "to be larger than 1)",
    hint="with N = 1 the partner is the only candidate left, so the loss is exactly 0",
    crash_means_mistake=True,
)
def single_pair(fn):
    z1, z2 = _randn(1, 8, seed=21), _randn(1, 8, seed=22)
    value = _loss(fn, z1, z2).item()
    if abs(value) > 1e-5:
        # It ran, so the single pair did not break it; a known wrong value names the mistake,
        # any other only says that the loss is wrong here.
        mistake = M.recognise(value, M.single_pair_signatures(z1, z2, 0.5), _close)
        raise Fail(f"N = 1 ran but gave {value:.5f}; it should give exactly 0: the partner is "
                   "the only candidate", measured=f"{value:.5f}", expected="0",
                   diagnosis=mistake, hint=M.HINTS.get(mistake),
                   conclusive=mistake is not None)


@checks.add(
    "matches known answers (values and gradients)",
    diagnosis="the loss differs from the reference on fixed inputs",
    hint="if the other checks pass, compare the temperature handling and the reduction",
)
def known_answers(fn):
    for case in load_cases("nt_xent"):
        z1 = torch.tensor(case["z1"], dtype=torch.float64, requires_grad=True)
        z2 = torch.tensor(case["z2"], dtype=torch.float64, requires_grad=True)
        tau = case["temperature"]
        loss = _loss(fn, z1, z2, tau)
        if abs(loss.item() - case["loss"]) > 1e-8 * max(1.0, abs(case["loss"])):
            # float64 cases: a float32 loss is that mistake; any other wrong value only says
            # that something is wrong, which the checks above pin down.
            low = loss.dtype == torch.float32
            raise Fail(
                f"N={len(case['z1'])}, D={len(case['z1'][0])}, tau={tau}: the loss is "
                f"{loss.item():.8f}, the stored answer {case['loss']:.8f}"
                + (" (and float64 inputs gave a float32 loss)" if low else ""),
                measured=f"{loss.item():.8f}",
                expected=f"{case['loss']:.8f}",
                diagnosis=M.FLOAT32 if low else None,
                conclusive=low,
            )
        if not loss.requires_grad:
            raise Fail("the loss does not require grad", diagnosis=M.GRAPH_CUT)
        loss.backward()
        views = (("z1", z1), ("z2", z2))
        missing = [name for name, z in views if (z.grad is None or z.grad.abs().max() == 0)
                   and any(g != 0 for row in case[f"grad_{name}"] for g in row)]
        if missing:
            raise Fail(f"N={len(case['z1'])}, tau={tau}: the value is right but no gradient "
                       f"reaches {' and '.join(missing)}", diagnosis=M.detached(missing))
        for name, z in views:
            want = torch.tensor(case[f"grad_{name}"], dtype=torch.float64)
            if z.grad is None or not torch.allclose(z.grad, want, rtol=1e-6, atol=1e-9):
                raise Fail(
                    f"N={len(case['z1'])}, tau={tau}: the value is right but the gradient "
                    f"with respect to {name} is not",
                    diagnosis="part of the computation is detached or uses a non-differentiable "
                    "step, so the gradient differs even though the value matches",
                )
    return "all stored cases match"
