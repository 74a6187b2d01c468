"""`gather_with_grad(t)`: every rank's `t`, concatenated in rank order along dim 0, with the
gradient of each rank's slice summed over all the ranks' losses (what torch's deprecated
autograd all-gather gives); without an initialized process group, `t` itself.

Checked without a process group (the real torch.distributed), then in simulated groups of 2, 3
and 4 ranks (grader/drills/scale/_world.py): the values each rank gets, whether they carry
autograd history, and the gradient each rank's `t` receives when every rank backpropagates a
loss of its own, matched against what the classic mistakes give; known answers in
grader/data/gather_with_grad.json.
"""

from __future__ import annotations

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import randn as _randn
from ...kit.lookup import fail_naming, which_mistake
from ...kit.mistakes import IN_PLACE
from ...sandbox import Fail, tensor_out
from ._common import DRILL, NOT_REDUCED, NOT_REDUCED_HINT, call, on_ranks

checks = checklist("gather_with_grad", drill=DRILL, smoke=lambda fn: fn(torch.ones(2, 3)))

NO_GROUP = (
    "without a process group the function calls the collectives anyway (get_world_size, "
    "all_gather) instead of returning t: check torch.distributed.is_initialized() first"
)
NO_HISTORY = (
    "dist.all_gather fills its buffers outside autograd, so the gathered tensor has no "
    "gradient history: wrap it in a torch.autograd.Function with a backward pass"
)
STACKED = ("the gathered tensors are stacked into a new dimension instead of concatenated along "
           "dim 0")
NOT_GATHERED = "only this rank's t is returned: the other ranks' rows are missing"
WRONG_ORDER = "the gathered rows are not in rank order (rank 0's rows first)"
WRONG_SLICE = (
    "the backward pass returns another rank's slice of the summed gradient: this rank's rows "
    "are rank * n to (rank + 1) * n"
)
AVERAGED = (
    "the gradient is averaged over the ranks instead of summed: each rank's loss counts in "
    "full, as in torch's autograd all-gather"
)
SLICE_REDUCED = (
    "each rank reduces its own slice: the all_reduce adds rank 0's slice to rank 1's and so "
    "on; reduce the whole gathered gradient, then take this rank's slice"
)
WHOLE_GRADIENT = (
    "the backward pass returns the gradient of the whole gathered tensor, not this rank's slice "
    "of it (autograd wants a gradient shaped like t)"
)

HINTS = {
    STACKED: "join the ranks' tensors end to end along the first dimension",
    NOT_GATHERED: "collect a tensor from every rank, in rank order",
    WRONG_ORDER: "the list the collective fills is in rank order: keep that order",
    WRONG_SLICE: "the part of the gradient that belongs to this rank starts at its rank times "
    "the local batch size",
    AVERAGED: "sum the ranks' gradients; the averaging over ranks is the data-parallel "
    "wrapper's job, done once, on the parameters",
    SLICE_REDUCED: "reduce first, over the full gathered shape, and slice afterwards",
    NOT_REDUCED: NOT_REDUCED_HINT,
    NO_HISTORY: "write a torch.autograd.Function: the forward pass gathers, the backward pass "
    "sends the gradient back to the ranks",
}


def _rank_inputs(world, n, d, seed, dtype=torch.float32):
    return _randn(world * n, d, seed=seed, dtype=dtype)


def _crash_mistake(exc_message):
    if "invalid gradient" in exc_message:
        return WHOLE_GRADIENT
    return None


def _run(fn, world, t, upstream, n, backward=True):
    """Each rank's (output, gradient of its t) when rank r's loss is sum(upstream[r] * out)."""

    def body(rank):
        mine = t[rank * n:(rank + 1) * n].clone().requires_grad_(True)
        try:
            out = call(fn, mine)
        except Fail as f:
            mistake = _crash_mistake(f.message)
            if mistake:
                raise Fail(f.message, diagnosis=mistake, hint=HINTS.get(mistake)) from None
            raise
        try:
            out = tensor_out(out, (world * n, t.shape[1]), what=f"rank {rank}'s result")
        except Fail as f:  # the rank-order check names what is wrong with the shape
            raise Fail(f.message, measured=f.measured, expected=f.expected,
                       conclusive=False) from None
        grad = None
        if backward and out.requires_grad and out.shape == (world * n, t.shape[1]):
            try:
                (upstream[rank] * out).sum().backward()
            except RuntimeError as exc:
                mistake = _crash_mistake(str(exc))
                raise Fail(f"rank {rank}'s backward pass raised RuntimeError: {exc}",
                           diagnosis=mistake, hint=HINTS.get(mistake),
                           conclusive=mistake is not None) from None
            grad = mine.grad
        return out.detach(), grad

    return on_ranks(world, body)[0]


@checks.add(
    "without a process group, returns t (and its gradient)",
    diagnosis=NO_GROUP,
    hint="one process is a group of one: gathering changes nothing then",
    crash_means_mistake=True,
)
def without_a_group(fn):
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return "skipped: this process belongs to a process group"
    t = _randn(3, 4, seed=920).requires_grad_(True)
    out = tensor_out(call(fn, t), (3, 4))
    if not torch.equal(out, t):
        raise Fail("without a process group the result differs from t", measured="changed",
                   expected="t itself")
    if out.requires_grad:
        (2 * out).sum().backward()
    if t.grad is None or not torch.equal(t.grad, torch.full_like(t, 2.0)):
        raise Fail("without a process group the gradient does not reach t unchanged",
                   diagnosis="without a process group the result is cut from t's graph (a "
                   "detach or a copy)", hint="return t itself")
    return "t, with its gradient"


@checks.add(
    "gathers every rank's t in rank order along dim 0 (3 simulated ranks)",
    diagnosis=NOT_GATHERED,
    hint=HINTS[NOT_GATHERED],
)
def gathers_in_rank_order(fn):
    world, n, d = 3, 2, 4
    t = _rank_inputs(world, n, d, seed=921)

    def body(rank):
        return call(fn, t[rank * n:(rank + 1) * n].clone())

    outs = on_ranks(world, body, named=False)[0]
    for rank, out in enumerate(outs):
        if isinstance(out, torch.Tensor) and out.shape == (world, n, d):
            raise Fail(f"rank {rank} got shape {tuple(out.shape)}", diagnosis=STACKED,
                       hint=HINTS[STACKED], measured=tuple(out.shape),
                       expected=(world * n, d))
        if isinstance(out, torch.Tensor) and out.shape == (n, d):
            raise Fail(f"rank {rank} got only {n} rows", diagnosis=NOT_GATHERED,
                       measured=tuple(out.shape), expected=(world * n, d))
        out = tensor_out(out, (world * n, d), what=f"rank {rank}'s result")
        if not torch.equal(out.detach(), t):
            same_rows = sorted(map(tuple, out.detach().reshape(-1, d).tolist())) == sorted(
                map(tuple, t.tolist()))
            mistake = WRONG_ORDER if same_rows else None
            raise fail_naming(f"rank {rank}'s gathered tensor is not the ranks' tensors in "
                              "rank order", mistake, hints=HINTS, measured="other rows",
                              expected=f"{world} blocks of {n} rows, rank 0's first")
    return f"{world} ranks of {n} rows each: every rank gets all {world * n} rows in rank order"


@checks.add(
    "the gathered tensor carries autograd history",
    diagnosis=NO_HISTORY,
    hint=HINTS[NO_HISTORY],
)
def keeps_history(fn):
    world, n, d = 2, 2, 3
    t = _rank_inputs(world, n, d, seed=922)

    def body(rank):
        mine = t[rank * n:(rank + 1) * n].clone().requires_grad_(True)
        return bool(call(fn, mine).requires_grad)

    flags = on_ranks(world, body, named=False)[0]
    if not all(flags):
        raise Fail("the gathered tensor does not require grad although t does",
                   measured="requires_grad=False", expected="requires_grad=True")
    return "requires grad on every rank"


def _gradient_signatures(world, n, upstream, rank):
    """What rank `rank`'s t.grad is under the classic mistakes (upstream[s]: rank s's gradient
    for the gathered tensor)."""
    total = upstream.sum(0)

    def rows(x, r):
        return x[r * n:(r + 1) * n]

    other = (rank + 1) % world
    return [
        (rows(upstream[rank], rank), NOT_REDUCED),
        (rows(total, rank) / world, AVERAGED),
        (rows(total, other), WRONG_SLICE),
        (rows(total, 0) if rank else rows(total, world - 1), WRONG_SLICE),
        (sum(rows(upstream[s], s) for s in range(world)), SLICE_REDUCED),
        (world * rows(upstream[rank], rank), NOT_REDUCED),
    ]


@checks.add(
    "each rank's t gets the sum over ranks of the gradients of its rows (2, 3 and 4 ranks)",
    diagnosis=NOT_REDUCED,
    hint=NOT_REDUCED_HINT,
)
def gradient_is_summed(fn):
    for world, n, d, seed in ((3, 2, 3, 923), (2, 1, 4, 924), (4, 2, 2, 925)):
        t = _rank_inputs(world, n, d, seed=seed, dtype=torch.float64)
        upstream = _randn(world, world * n, d, seed=seed + 10, dtype=torch.float64)
        outs = _run(fn, world, t, upstream, n)
        for rank, (out, grad) in enumerate(outs):
            expected = upstream.sum(0)[rank * n:(rank + 1) * n]
            if not torch.equal(out, t):
                raise Fail(f"with {world} ranks, rank {rank}'s gathered values are wrong, so "
                           "its gradient cannot be judged", conclusive=False)
            if grad is None:
                raise Fail(f"with {world} ranks, no gradient reached rank {rank}'s t",
                           conclusive=False)
            if torch.allclose(grad, expected, rtol=1e-9, atol=1e-12):
                continue
            mistake = which_mistake(grad, _gradient_signatures(world, n, upstream, rank),
                                    rel=1e-9, abs_=1e-12)
            raise fail_naming(f"with {world} ranks, rank {rank}'s t got the wrong gradient",
                              mistake, hints=HINTS, measured=f"{grad.flatten()[:3].tolist()}",
                              expected=f"{expected.flatten()[:3].tolist()} (first entries)")
    return "summed over the ranks, this rank's slice, with 2, 3 and 4 ranks"


@checks.add(
    "float64 in, float64 out, on every rank",
    diagnosis="the gathered tensor drops to float32 (a buffer made without the input's dtype)",
    hint="make the buffers the collective fills like t (same dtype and device)",
)
def keeps_float64(fn):
    world, n, d = 2, 2, 3
    t = _rank_inputs(world, n, d, seed=926, dtype=torch.float64)
    outs = _run(fn, world, t, torch.ones(world, world * n, d, dtype=torch.float64), n)
    for rank, (out, _) in enumerate(outs):
        if out.dtype != torch.float64:
            raise Fail(f"rank {rank} got a {out.dtype} tensor from float64 inputs",
                       measured=out.dtype, expected="torch.float64")
    return "float64 on both ranks"


@checks.add(
    "leaves its input unchanged",
    diagnosis=IN_PLACE,
    hint="build new tensors from t instead of writing into it",
)
def input_unchanged(fn):
    world, n, d = 2, 2, 3
    t = _rank_inputs(world, n, d, seed=927)
    _run(fn, world, t, torch.ones(world, world * n, d), n)


@checks.add(
    "matches known answers (values and gradients on every rank)",
    diagnosis="the gathered values or their gradients differ from the reference on fixed inputs",
    hint="if the other checks pass, compare the order of the ranks and the slice each keeps",
)
def known_answers(fn):
    for case in load_cases("gather_with_grad"):
        world = case["world_size"]
        t = torch.tensor(case["t"], dtype=torch.float64)
        upstream = torch.tensor(case["upstream"], dtype=torch.float64)
        outs = _run(fn, world, t, upstream, len(t) // world)
        for rank, (out, grad) in enumerate(outs):
            want_out = torch.tensor(case["out"][rank], dtype=torch.float64)
            want_grad = torch.tensor(case["grad"][rank], dtype=torch.float64)
            if not torch.allclose(out, want_out, rtol=1e-9, atol=1e-12) or grad is None or \
                    not torch.allclose(grad, want_grad, rtol=1e-9, atol=1e-12):
                raise Fail(f"{world} ranks: rank {rank} differs from the stored answer",
                           conclusive=False)
    return "all stored cases match"
