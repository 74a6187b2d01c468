"""Checks for `update_center` (drill 04): a new center of the right shape, built without touching
the inputs, equal to momentum * center + (1 - momentum) * the mean over the batch and every
teacher view, with the right limits at momentum 0 and 1, no autograd history, float64 precision,
and stored known answers. Teacher views are built with known integer batch means.
"""

from __future__ import annotations

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import gen as _gen
from ...sandbox import Fail, call, tensor_out
from ._common import F64

center_checks = checklist(
    "update_center",
    drill="04_dino",
    smoke=lambda fn: fn(torch.zeros(3), [torch.zeros(1, 3)] * 2),
)


def _center(fn, center, teacher, **kwargs):
    try:
        out = call(fn, center, teacher, **kwargs)  # also checks the list and its views
    except Fail as failure:
        if "must match the size" in failure.message:
            raise Fail(failure.message, diagnosis=_WRONG_AXIS, hint=failure.hint) from None
        raise
    try:
        out = tensor_out(out, tuple(center.shape), what="the new center")
    except Fail as failure:
        if failure.diagnosis == "the output has the wrong shape":
            failure.diagnosis = ("the new center has the wrong shape: it must have the center's "
                                 "shape (K,), one number per output dimension (no keepdim, and "
                                 "the mean taken over the batch axis)")
        raise
    if not torch.isfinite(out).all():
        raise Fail("the new center has NaN or inf", diagnosis="the computation overflowed")
    return out


_WRONG_AXIS = ("the batch mean runs over the wrong axis: averaging over the K outputs (dim=1) "
               "gives one number per sample; the center needs one per output dimension (dim=0)")


def _views_with_means(means, b, seed, dtype=F64):
    """One (b, K) teacher view per row of `means`, whose batch mean is exactly that row: the
    rows are mean +- a spread, paired so that they cancel."""
    views = []
    for n, mu in enumerate(means):
        spread = torch.randint(-3, 4, (b // 2, len(mu)), generator=_gen(seed + n)).to(dtype)
        rows = [mu + spread, mu - spread] + ([mu.unsqueeze(0)] if b % 2 else [])
        views.append(torch.cat(rows))
    return views


def _center_case(k=4, b=4, seed=0):
    """A center and two teacher views whose per-view batch means are known small integers."""
    g = _gen(seed)
    center = torch.randint(-4, 5, (k,), generator=g).to(F64)
    means = torch.randint(-4, 5, (2, k), generator=g).to(F64)
    return center, _views_with_means(means, b, seed + 1), means


_SWAPPED = ("the momentum weights are swapped: the old center should keep `momentum` and the "
            "new batch mean get 1 - momentum")


def _center_signatures(center, means, m):
    mean = means.mean(0)
    return [
        ((1 - m) * center + m * mean, _SWAPPED),
        (m * center + (1 - m) * means[0], "only the first teacher view is used: the batch mean "
         "runs over every global view"),
        (m * center + (1 - m) * means[-1], "only the last teacher view is used: the batch mean "
         "runs over every global view"),
        (m * center + (1 - m) * means.sum(0), "the views are summed instead of averaged"),
        (mean, "the old center is dropped: the new center is just the batch mean (no momentum)"),
        (center.clone(), "the center does not move: the batch mean is never mixed in"),
        (0.9 * center + 0.1 * mean, "momentum is hard-coded to 0.9: the argument is ignored"),
    ]


@center_checks.add(
    "returns a new center of the same shape and dtype",
    diagnosis="the new center has the wrong shape: it is the mean over the batch and the views, "
    "one number per output dimension",
    hint="concatenate the teacher views along the batch axis and average over dim 0",
)
def center_shape(fn):
    center, views, _ = _center_case(k=5, b=4, seed=200)
    out = _center(fn, center.float(), [v.float() for v in views])
    if out.dtype != torch.float32:
        raise Fail(f"float32 inputs gave a {out.dtype} center", diagnosis="the dtype changed")
    return "shape (K,), float32"


@center_checks.add(
    "leaves its inputs unchanged",
    diagnosis="an in-place operation modified the caller's tensors",
    hint="build the new center as a new tensor from the old one and the batch mean, never by "
    "scaling or adding into the center in place",
)
def center_inputs_unchanged(fn):
    center, views, _ = _center_case(seed=205)
    out = _center(fn, center, views)  # the center and every view are compared before and after
    if out is center or out.untyped_storage().data_ptr() == center.untyped_storage().data_ptr():
        raise Fail("the returned center is the input tensor itself",
                   diagnosis="the center was updated in place and returned: the caller's old "
                   "center changed too")
    return "center and views untouched; a new tensor returned"


@center_checks.add(
    "momentum 1 keeps the center, momentum 0 gives the batch mean",
    diagnosis="the limits are wrong: momentum is the weight of the old center",
    hint="the old center keeps the weight `momentum` and the mean of the teacher outputs takes "
    "the rest: momentum 1 keeps the center, momentum 0 replaces it by the batch mean",
)
def center_limits(fn):
    center, views, means = _center_case(seed=210)
    kept = _center(fn, center, views, momentum=1.0)
    fresh = _center(fn, center, views, momentum=0.0)
    if torch.allclose(kept, means.mean(0)) and torch.allclose(fresh, center):
        raise Fail("momentum 1 gave the batch mean and momentum 0 kept the old center",
                   diagnosis=_SWAPPED)
    if not torch.allclose(kept, center, rtol=0, atol=1e-12):
        raise Fail("momentum 1 changed the center",
                   diagnosis=_find_tensor(kept, _center_signatures(center, means, 1.0)[1:]),
                   measured=kept.tolist(), expected=center.tolist())
    if not torch.allclose(fresh, means.mean(0), rtol=0, atol=1e-12):
        mistake = _find_tensor(fresh, _center_signatures(center, means, 0.0))
        raise Fail("momentum 0 did not give the mean over the batch and the views",
                   diagnosis=mistake, measured=fresh.tolist(), expected=means.mean(0).tolist())
    return "both limits exact"


def _find_tensor(value, signatures):
    for signature, mistake in signatures:
        if value.shape == signature.shape and torch.allclose(value, signature, rtol=1e-9,
                                                             atol=1e-12):
            return mistake
    return None


@center_checks.add(
    "is the momentum average of the mean over batch and views",
    diagnosis="the new center is not momentum * center + (1 - momentum) * batch-and-view mean",
    hint="average the teacher outputs over the batch and over the global views together",
)
def center_formula(fn):
    found = []
    for m, kwargs in ((0.9, {}), (0.5, {"momentum": 0.5}), (0.75, {"momentum": 0.75})):
        center, views, means = _center_case(k=6, b=6, seed=220 + int(100 * m))
        out = _center(fn, center, views, **kwargs)
        expected = m * center + (1 - m) * means.mean(0)
        if torch.allclose(out, expected, rtol=1e-9, atol=1e-12):
            found.append(f"m={m}" + (" (default)" if not kwargs else ""))
            continue
        raise Fail(
            f"momentum {m}{' (the default)' if not kwargs else ''}: wrong center",
            diagnosis=_find_tensor(out, _center_signatures(center, means, m)),
            measured=[round(x, 4) for x in out.tolist()],
            expected=[round(x, 4) for x in expected.tolist()],
        )
    return "exact for " + ", ".join(found)


@center_checks.add(
    "uses every view and every sample, whatever their number",
    diagnosis="the mean does not cover every teacher view and every sample",
    hint="concatenate every view in the list along the batch axis, whatever their number, and "
    "average over all of the rows",
)
def center_many_views(fn):
    g = _gen(230)
    means = torch.randint(-4, 5, (3, 5), generator=g).to(F64)
    views = _views_with_means(means, 3, seed=231)
    center = torch.zeros(5, dtype=F64)
    out = _center(fn, center, views, momentum=0.0)
    if not torch.allclose(out, means.mean(0), rtol=1e-9, atol=1e-12):
        raise Fail("three teacher views of three samples each: wrong mean",
                   diagnosis=_find_tensor(out, _center_signatures(center, means, 0.0)),
                   measured=[round(x, 4) for x in out.tolist()],
                   expected=[round(x, 4) for x in means.mean(0).tolist()])
    one = _center(fn, center, [means[0].unsqueeze(0), means[1].unsqueeze(0)], momentum=0.0)
    if not torch.allclose(one, means[:2].mean(0), rtol=1e-9, atol=1e-12):
        raise Fail("a batch of one sample per view gave the wrong mean",
                   diagnosis="a batch of one breaks the code (a .squeeze(), or a shape assumed "
                   "to be larger than 1)")
    return "3 views of 3 samples, and 2 views of 1 sample"


@center_checks.add(
    "carries no autograd history",
    diagnosis="the new center carries autograd history: it was computed with gradient tracking "
    "from outputs that require grad (as student outputs do). The center is a running statistic "
    "of the teacher, a constant for the loss",
    hint="compute the center without autograd (in a torch.no_grad block), or detach the "
    "teacher outputs first",
)
def center_no_grad(fn):
    center, views, _ = _center_case(seed=240)
    views = [v.clone().requires_grad_(True) for v in views]
    out = _center(fn, center, views)
    if out.requires_grad or out.grad_fn is not None:
        raise Fail("the returned center requires grad", measured="requires_grad=True",
                   expected="a constant tensor")
    return "a constant tensor"


@center_checks.add(
    "float64 in, float64 out, to float64 precision",
    diagnosis="the computation drops to float32 somewhere (a .float(), or a float32 tensor made "
    "inside without dtype=)",
    hint="create helper tensors with the inputs' dtype and device",
)
def center_keeps_float64(fn):
    # First on numbers float32 holds exactly: a wrong value there is a wrong formula (named
    # where it has a known signature), not lost precision.
    center = torch.ones(3, dtype=F64)
    means = torch.tensor([[2.0] * 3, [4.0] * 3], dtype=F64)
    out = _center(fn, center, [m.expand(2, 3).clone() for m in means], momentum=0.5)
    if out.dtype == F64 and not torch.allclose(out, 0.5 * center + 0.5 * means.mean(0),
                                               rtol=0, atol=1e-12):
        mistake = _find_tensor(out, _center_signatures(center, means, 0.5))
        raise Fail("momentum 0.5 on small integers (exact in float32 too): wrong center",
                   diagnosis=mistake, measured=out.tolist(), expected=[2.0] * 3,
                   conclusive=mistake is not None)
    center = torch.full((3,), 1.0 + 2 ** -40, dtype=F64)
    views = [torch.full((2, 3), 1.0 + 2 ** -38, dtype=F64) for _ in range(2)]
    out = _center(fn, center, views, momentum=0.5)
    if out.dtype != F64:
        raise Fail(f"float64 inputs gave a {out.dtype} center", measured=out.dtype,
                   expected="torch.float64")
    expected = 0.5 * (1.0 + 2 ** -40) + 0.5 * (1.0 + 2 ** -38)
    if (out - expected).abs().max().item() > 1e-15:  # right on exact numbers: precision lost
        raise Fail("the value is off by more than float64 rounding",
                   measured=f"{out[0].item():.17f}", expected=f"{expected:.17f}")


@center_checks.add(
    "matches known answers",
    diagnosis="the new center differs from the reference on fixed inputs",
    hint="if the other checks pass, compare the axis of the mean and the momentum weights",
)
def center_known_answers(fn):
    for n, case in enumerate(load_cases("dino_center")):
        center = torch.tensor(case["center"], dtype=F64)
        views = [torch.tensor(x, dtype=F64) for x in case["teacher_out"]]
        out = _center(fn, center, views, momentum=case["momentum"])
        want = torch.tensor(case["new_center"], dtype=F64)
        if not torch.allclose(out, want, rtol=1e-9, atol=1e-12):
            # A stored answer says that the center is wrong, not why: the checks above do.
            raise Fail(f"case {n} (momentum {case['momentum']}): wrong center",
                       measured=[round(x, 6) for x in out.tolist()],
                       expected=[round(x, 6) for x in want.tolist()], conclusive=False)
    return "all stored cases match"
