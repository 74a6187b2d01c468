"""Checks for drill 01: `nt_xent_loss(z1, z2, temperature=0.5)`, SimCLR's NT-Xent loss.

The checks never compute the loss the way a solution would. They use inputs whose correct loss
has a closed form (collapsed embeddings, perfect pairs, N = 1), properties every correct loss
has (invariances, symmetry, gradients) and known answers stored in grader/data/nt_xent.json.
Where a wrong value has a recognisable signature (log(2N) instead of log(2N-1), say), the
failure names the mistake that produces it.
"""

from __future__ import annotations

import math

import torch

from ..checks import checklist
from ..data import load_cases
from ..inputs import close as _close
from ..inputs import gen as _gen
from ..inputs import randn as _randn
from ..sandbox import Fail, call, scalar

checks = checklist(
    "nt_xent_loss",
    drill="01_nt_xent",
    probe=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4)),
)


def _loss(fn, z1, z2, temperature=0.5):
    return scalar(call(fn, z1, z2, temperature=temperature))


def _collapsed_signatures(n, tau):
    """Values a collapsed batch (every embedding equal) gives under classic mistakes."""
    m = 2 * n
    return {
        math.log(m): "the diagonal is not masked: each view also competes with itself, "
        "so a collapsed batch gives log(2N) instead of log(2N-1)",
        -1 / tau + math.log(1 + (m - 1) * math.exp(1 / tau)): "the diagonal was set to 0 "
        "instead of -inf: exp(0) = 1 still counts the view itself as a candidate",
        math.log(n): "only the N x N cross-view similarities are used: the other "
        "same-view embeddings are missing from the negatives",
        m * math.log(m - 1): "the per-anchor losses are summed instead of averaged",
        2 * math.log(m - 1): "the two directions are added (or the sum divided by N) "
        "instead of averaging over all 2N anchors",
        n * math.log(m - 1): "the loss is summed over one view's anchors instead of averaged",
    }


@checks.add(
    "returns a scalar tensor",
    diagnosis="the loss is not a single number",
    hint="the loss is the mean over the 2N anchors: a 0-dimensional tensor",
)
def returns_scalar(fn):
    z1, z2 = _randn(4, 8, seed=0), _randn(4, 8, seed=1)
    out = _loss(fn, z1, z2)
    if out.dtype != torch.float32:
        raise Fail(f"float32 inputs gave a {out.dtype} loss", diagnosis="the dtype changed")
    return f"loss = {out.item():.4f} on a random batch of N=4"


@checks.add(
    "leaves its inputs unchanged",
    diagnosis="an in-place operation modified the caller's tensors",
    hint="normalise into a new tensor (z = F.normalize(z, dim=1)) rather than in place",
)
def inputs_unchanged(fn):
    z1 = _randn(5, 6, seed=2).requires_grad_(False)
    z2 = _randn(5, 6, seed=3)
    _loss(fn, z1 * 3.0, z2 + 1.0)  # `call` compares every tensor argument before and after
    _loss(fn, z1, z2)


@checks.add(
    "is invariant to rescaling each embedding (cosine similarity)",
    diagnosis="the embeddings are not L2-normalised, so the loss uses dot products, "
    "not cosine similarity",
    hint="normalise each row of z1 and z2 to unit length before comparing them",
)
def scale_invariant(fn):
    z1, z2 = _randn(6, 8, seed=4), _randn(6, 8, seed=5)
    base = _loss(fn, z1, z2).item()
    uniform = _loss(fn, 3.0 * z1, 3.0 * z2).item()
    if not _close(uniform, base):
        raise Fail(
            "multiplying every embedding by a constant changed the loss",
            measured=f"{uniform:.5f}",
            expected=f"{base:.5f} (unchanged)",
        )
    rows = torch.linspace(0.2, 5.0, 6).unsqueeze(1)
    per_row = _loss(fn, rows * z1, 0.25 * rows.flip(0) * z2).item()
    if not _close(per_row, base):
        raise Fail(
            "rescaling individual rows changed the loss (a uniform rescale did not)",
            diagnosis="the embeddings are normalised along the wrong axis: each *row* (one "
            "embedding, dim=1) must have unit length, not each column",
            hint="normalise over the feature dimension: dim=1 (or dim=-1)",
            measured=f"{per_row:.5f}",
            expected=f"{base:.5f} (unchanged)",
        )
    return f"{base:.5f} before and after rescaling"


@checks.add(
    "collapsed embeddings give exactly log(2N-1)",
    diagnosis="the loss of a collapsed batch is wrong",
    hint="with every embedding equal, each anchor sees 2N-1 equally likely candidates",
)
def collapsed(fn):
    n, tau = 4, 0.5
    z = torch.ones(n, 3)
    value = _loss(fn, z, z.clone(), tau).item()
    expected = math.log(2 * n - 1)
    if _close(value, expected):
        return f"{value:.5f} = log({2 * n - 1})"
    for signature, mistake in _collapsed_signatures(n, tau).items():
        if _close(value, signature):
            raise Fail(
                f"a collapsed batch of N={n} gave {value:.5f}",
                diagnosis=mistake,
                measured=f"{value:.5f}",
                expected=f"log({2 * n - 1}) = {expected:.5f}",
            )
    raise Fail(
        f"a collapsed batch of N={n} gave {value:.5f}",
        measured=f"{value:.5f}",
        expected=f"log({2 * n - 1}) = {expected:.5f}",
    )


@checks.add(
    "a view never matches itself",
    diagnosis="the diagonal is not masked: a view is matching itself",
    hint="exclude each row's similarity with itself before the softmax (set it to -inf)",
)
def masks_self(fn):
    # Identical views of well-separated points at low temperature: each anchor's partner is an
    # exact copy, so a correct loss is ~0. Left unmasked, the anchor itself ties with the
    # partner and the loss is ~log 2.
    z = torch.eye(6, 16) + 0.01 * _randn(6, 16, seed=6)
    value = _loss(fn, z, z.clone(), 0.05).item()
    if abs(value - math.log(2)) < 0.05:
        raise Fail(
            f"identical views gave {value:.4f}, about log 2: two candidates tie for each anchor",
            measured=f"{value:.4f}",
            expected="about 0",
        )
    if value > 0.05:
        raise Fail(
            f"identical views gave {value:.4f}",
            measured=f"{value:.4f}",
            expected="about 0",
            diagnosis="identical, well-separated views should be easy to match, so the positive "
            "or the temperature is off (the checks below narrow it down)",
            conclusive=False,
        )
    return f"{value:.2e} for identical views"


@checks.add(
    "perfect pairs with orthogonal negatives give a loss near 0",
    diagnosis="the target is not the partner view: row i's positive is row i+N "
    "(and row i+N's is row i) in the stacked [z1; z2] batch",
    hint="build the targets from the stacking order: the first N rows point to the last N "
    "and vice versa",
)
def perfect_pairs(fn):
    n, tau = 5, 0.05
    z = torch.eye(n, 8)
    value = _loss(fn, z, z.clone(), tau).item()
    expected = -1 / tau + math.log(math.exp(1 / tau) + 2 * n - 2)
    if _close(value, expected, rel=1e-3, abs_=1e-4):
        return f"{value:.2e}"
    signatures = {
        math.log(math.exp(1 / tau) + 2 * n - 2): None,  # the target is an orthogonal view
        -tau + math.log(math.exp(tau) + 2 * n - 2):
            "the similarities are multiplied by the temperature instead of divided",
        -1 + math.log(math.e + 2 * n - 2): "the temperature argument is ignored",
    }
    mistake = next((m for v, m in signatures.items() if _close(value, v, rel=1e-3)), "?")
    raise Fail(
        f"z1 = z2 = orthonormal rows at tau={tau} gave {value:.4g}",
        measured=f"{value:.4g}",
        expected=f"{expected:.2e}",
        diagnosis=None if mistake in (None, "?") else mistake,
        conclusive=mistake != "?",
    )


@checks.add(
    "the positive is the partner view",
    diagnosis="the target is not the partner view: pairs are (z1[i], z2[i]); in the stacked "
    "batch the partner of row i is i+N, of row i+N is i",
    hint="check the target of the first and of the last row by hand",
)
def partner_is_positive(fn):
    n = 6
    z1 = torch.eye(n, 8)
    matched = _loss(fn, z1, z1.clone(), 0.1).item()
    shifted = _loss(fn, z1, z1.roll(1, dims=0), 0.1).item()
    if not matched < shifted - 1.0:
        raise Fail(
            "aligning z2[i] with z1[i] did not give a lower loss than aligning z2[i] with "
            "z1[i-1]",
            measured=f"aligned {matched:.3f}, shifted {shifted:.3f}",
            expected="aligned far below shifted",
        )
    return f"aligned {matched:.3f} < shifted {shifted:.3f}"


@checks.add(
    "lower temperature sharpens the softmax",
    diagnosis="the temperature is applied the wrong way",
    hint="similarities are divided by tau: a small tau makes large logits",
)
def temperature_sharpens(fn):
    z = torch.eye(4, 8) + 0.1 * _randn(4, 8, seed=7)
    z2 = z + 0.05 * _randn(4, 8, seed=8)
    losses = [_loss(fn, z, z2, t).item() for t in (0.1, 0.5, 1.0)]
    text = ", ".join(f"tau={t}: {v:.3f}" for t, v in zip((0.1, 0.5, 1.0), losses))
    if losses[0] < losses[1] < losses[2]:
        return text
    if losses[0] > losses[1] > losses[2]:
        raise Fail(
            "the loss on well-matched pairs grows as tau shrinks: " + text,
            diagnosis="the similarities are multiplied by the temperature instead of divided",
            measured=text,
            expected="loss falls as tau falls",
        )
    if _close(losses[0], losses[2]):
        raise Fail(
            "the loss does not depend on the temperature: " + text,
            diagnosis="the temperature argument is ignored",
            measured=text,
            expected="loss falls as tau falls",
        )
    raise Fail("the loss does not fall steadily as tau falls: " + text, measured=text)


@checks.add(
    "is symmetric in (z1, z2)",
    diagnosis="only one direction is counted: the anchors of z1 are used but not those of z2; "
    "NT-Xent averages over all 2N anchors",
    hint="every embedding in the stacked batch is an anchor once",
)
def symmetric(fn):
    z1, z2 = _randn(6, 8, seed=9), _randn(6, 8, seed=10)
    a, b = _loss(fn, z1, z2).item(), _loss(fn, z2, z1).item()
    if not _close(a, b):
        raise Fail("swapping the views changed the loss", measured=f"{a:.5f} vs {b:.5f}",
                   expected="equal")
    return f"{a:.5f} both ways"


@checks.add(
    "is invariant to reordering the pairs",
    diagnosis="the loss depends on the order of the pairs in the batch, so the targets or the "
    "mask do not follow the pairs",
    hint="derive the targets from the batch size, not from fixed positions",
)
def permutation_invariant(fn):
    z1, z2 = _randn(7, 8, seed=11), _randn(7, 8, seed=12)
    perm = torch.randperm(7, generator=_gen(13))
    a, b = _loss(fn, z1, z2).item(), _loss(fn, z1[perm], z2[perm]).item()
    if not _close(a, b):
        raise Fail("permuting the pairs changed the loss", measured=f"{a:.5f} vs {b:.5f}",
                   expected="equal")


@checks.add(
    "gradients reach both views",
    diagnosis="the gradient is cut: a .detach(), .item(), .numpy() or torch.tensor(...) "
    "re-wrap breaks the graph",
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
            diagnosis=f"{' and '.join(missing)} is detached (a stop-gradient on one view): "
            "SimCLR backpropagates through both views",
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
        raise Fail("the returned loss does not require grad")
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
    diagnosis="the computation drops to float32 somewhere (a .float(), or a float32 tensor "
    "made inside without dtype=)",
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
    expected = math.log(2 * n - 1)
    if abs(out.item() - expected) > 1e-12:
        raise Fail(
            "a collapsed float64 batch is off by more than float64 rounding",
            measured=f"{out.item():.15f}",
            expected=f"{expected:.15f}",
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
        raise Fail("N = 1 should give exactly 0: the partner is the only candidate",
                   measured=f"{value:.5f}", expected="0")


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
            raise Fail(
                f"N={len(case['z1'])}, D={len(case['z1'][0])}, tau={tau}: wrong value",
                measured=f"{loss.item():.8f}",
                expected=f"{case['loss']:.8f}",
            )
        if not loss.requires_grad:
            raise Fail("the loss does not require grad", diagnosis="the graph is cut")
        loss.backward()
        for name, z in (("z1", z1), ("z2", z2)):
            want = torch.tensor(case[f"grad_{name}"], dtype=torch.float64)
            if z.grad is None or not torch.allclose(z.grad, want, rtol=1e-6, atol=1e-9):
                raise Fail(
                    f"N={len(case['z1'])}, tau={tau}: the value is right but the gradient "
                    f"with respect to {name} is not",
                    diagnosis="part of the computation is detached or uses a non-differentiable "
                    "step, so the gradient differs even though the value matches",
                )
    return "all stored cases match"
