"""`distributed_clip_loss(image_emb, text_emb, logit_scale)`: CLIP's loss (drill 03) over a batch
split across ranks. Each rank holds n pairs of the global N = world_size * n; it returns its
share, the loss of its own n rows of the global logits (its images against every caption, its
captions against every image), so that the mean over ranks is clip_loss of the global batch and,
with gradients summed through the gather, averaging the ranks' parameter gradients (what
DistributedDataParallel does) gives clip_loss's gradients.

Checked without a process group (it is clip_loss then), and in simulated groups of ranks
(grader/drills/scale/_world.py) on closed forms (collapsed towers: log N on every rank; perfect
pairs), each rank's own share and the global loss and gradients stored in
grader/data/distributed_clip.json.
"""

from __future__ import annotations

import math

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import close as _close
from ...inputs import randn as _randn
from ...kit.lookup import fail_naming, which_mistake
from ...kit.mistakes import FLOAT32, GRAPH_CUT
from ...sandbox import Fail
from ._common import DRILL, NOT_REDUCED, NOT_REDUCED_HINT, on_ranks, value_of

checks = checklist(
    "distributed_clip_loss",
    drill=DRILL,
    smoke=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4), torch.tensor(10.0)),
)

LOCAL_ONLY = (
    "only this rank's batch is used: the other ranks' embeddings are not gathered, so each "
    "image competes with the n captions of its rank instead of all N of the global batch"
)
LABELS_NOT_OFFSET = (
    "the targets are not offset by the rank: rank r's pair i is pair r * n + i of the "
    "global batch, so its caption is column r * n + i, not column i"
)
DIVIDED = (
    "the share is divided by the world size: the mean over the ranks must be clip_loss itself "
    "(the gradients are averaged by the data-parallel wrapper, not by the loss)"
)
MULTIPLIED = "the share is multiplied by the world size: the mean over the ranks must be clip_loss"
GLOBAL_ON_EVERY_RANK = (
    "every rank returns the loss of the whole global batch (N x N logits) instead of its own "
    "rows against all the columns (n x N): each rank does every rank's work"
)
NO_GROUP = (
    "without a process group the function calls the collectives anyway instead of working as "
    "clip_loss on the batch it is given"
)

HINTS = {
    LOCAL_ONLY: "gather both towers' embeddings from every rank, so that the columns of the "
    "logits are the whole global batch",
    LABELS_NOT_OFFSET: "a rank's rows are a block of the global batch: their targets start at "
    "the rank times the local batch size",
    DIVIDED: "return the mean over this rank's rows, as it is",
    MULTIPLIED: "return the mean over this rank's rows, as it is",
    GLOBAL_ON_EVERY_RANK: "keep only this rank's images as rows against all captions, and "
    "this rank's captions as rows against all images",
    NOT_REDUCED: NOT_REDUCED_HINT,
}


def _shares(fn, world, image, text, scale, *, backward=False):
    """Each rank's (share, grads of its image rows, text rows, logit_scale) in a simulated
    group; `image` and `text` are the global batch, split in rank order. Also returns how many
    collectives each rank called in its backward pass."""
    n = len(image) // world

    def body(rank):
        leaves = [image[rank * n:(rank + 1) * n].clone(), text[rank * n:(rank + 1) * n].clone(),
                  torch.tensor(scale, dtype=image.dtype)]
        if backward:
            leaves = [x.requires_grad_(True) for x in leaves]
        share = value_of(fn, *leaves)
        if backward:
            if not share.requires_grad:
                raise Fail(f"rank {rank}'s share does not require grad", diagnosis=GRAPH_CUT)
            share.backward()
        return share.detach(), [x.grad for x in leaves]

    return on_ranks(world, body)


def _perfect(s, n):
    return -s + math.log(math.exp(s) + n - 1)


@checks.add(
    "without a process group, it is clip_loss on the batch (log N collapsed, ~0 for perfect "
    "pairs)",
    diagnosis=NO_GROUP,
    hint="one process is a group of one: gathering changes nothing then, and the rank is 0",
    crash_means_mistake=True,
)
def without_a_group(fn):
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return "skipped: this process belongs to a process group"
    n, s = 4, 10.0
    z = torch.ones(n, 3)
    collapsed = value_of(fn, z, z.clone(), torch.tensor(s)).item()
    e = torch.eye(n, 6)
    perfect = value_of(fn, e, e.clone(), torch.tensor(s)).item()
    if _close(collapsed, math.log(n)) and _close(perfect, _perfect(s, n), 1e-4, 1e-6):
        return f"log({n}) = {collapsed:.5f} collapsed, {perfect:.2e} for perfect pairs"
    raise Fail("without a process group the loss is not clip_loss's",
               measured=f"{collapsed:.5f} collapsed, {perfect:.3g} perfect",
               expected=f"{math.log(n):.5f} and {_perfect(s, n):.3g}",
               diagnosis="without a process group the loss is not clip_loss on the batch "
               "(drill 03's loss: both directions, the diagonal as targets)")


@checks.add(
    "collapsed towers give log N on every rank (N the global batch, 3 simulated ranks)",
    diagnosis="the loss of a collapsed global batch is wrong",
    hint="with every embedding equal, each row sees all N of the global batch as equally "
    "likely",
)
def collapsed(fn):
    world, n, s = 3, 2, 10.0
    z = torch.ones(world * n, 3)
    (results, _) = _shares(fn, world, z, z.clone(), s)
    big_n = world * n
    signatures = [(math.log(n), LOCAL_ONLY), (math.log(big_n) / world, DIVIDED),
                  (world * math.log(big_n), MULTIPLIED)]
    for rank, (share, _) in enumerate(results):
        value = share.item()
        if not _close(value, math.log(big_n)):
            raise fail_naming(f"rank {rank} of {world} (n = {n} each) gave {value:.5f}",
                              which_mistake(value, signatures), hints=HINTS,
                              measured=f"{value:.5f}",
                              expected=f"log({big_n}) = {math.log(big_n):.5f}")
    return f"log({big_n}) = {math.log(big_n):.5f} on each of {world} ranks"


@checks.add(
    "perfect pairs across ranks give a loss near 0 on every rank",
    diagnosis=LABELS_NOT_OFFSET,
    hint=HINTS[LABELS_NOT_OFFSET],
)
def perfect_pairs(fn):
    world, n, s = 3, 2, 10.0
    e = torch.eye(world * n, 8)
    (results, _) = _shares(fn, world, e, e.clone(), s)
    big_n = world * n
    expected = _perfect(s, big_n)
    values = [share.item() for share, _ in results]
    if all(_close(v, expected, 1e-4, 1e-6) for v in values):
        return f"{expected:.2e} on each of {world} ranks"
    shown = ", ".join(f"{v:.4g}" for v in values)
    off = math.log(math.exp(s) + big_n - 1)  # the target column is orthogonal to the row
    if _close(values[0], expected, 1e-4, 1e-6) and all(_close(v, off, 1e-4) for v in values[1:]):
        mistake = LABELS_NOT_OFFSET
    else:
        mistake = which_mistake(values[-1], [(_perfect(s, n), LOCAL_ONLY),
                                            (expected / world, DIVIDED),
                                            (expected * world, MULTIPLIED)], rel=1e-4, abs_=1e-7)
    raise fail_naming(f"image = text = {big_n} orthonormal rows over {world} ranks at "
                      f"logit_scale = {s:g}: the ranks gave {shown}", mistake, hints=HINTS,
                      measured=shown, expected=f"{expected:.2e} on every rank")


def _case(case):
    return (case["world_size"], torch.tensor(case["image_emb"], dtype=torch.float64),
            torch.tensor(case["text_emb"], dtype=torch.float64), case["logit_scale"])


@checks.add(
    "each rank returns the share of its own rows",
    diagnosis=GLOBAL_ON_EVERY_RANK,
    hint=HINTS[GLOBAL_ON_EVERY_RANK],
)
def own_share(fn):
    for case in load_cases("distributed_clip"):
        world, image, text, scale = _case(case)
        (results, _) = _shares(fn, world, image, text, scale)
        values = [share.item() for share, _ in results]
        if all(_close(v, w, 1e-8, 1e-10) for v, w in zip(values, case["shares"])):
            continue
        same = all(_close(v, case["loss"], 1e-8, 1e-10) for v in values)
        raise Fail(f"{world} ranks: the shares are {', '.join(f'{v:.5f}' for v in values)}",
                   measured=", ".join(f"{v:.5f}" for v in values),
                   expected=", ".join(f"{v:.5f}" for v in case["shares"]),
                   diagnosis=GLOBAL_ON_EVERY_RANK if same else None, conclusive=same)
    return "every rank's share matches, in every stored case"


@checks.add(
    "mean over ranks = clip_loss of the global batch; averaged gradients = its gradients",
    diagnosis="the averaged gradients are not clip_loss's gradients over the global batch",
    hint="what each rank's backward pass sends through the gather is summed over the ranks, "
    "then the data-parallel wrapper divides by the world size: check that the two meet",
)
def global_loss_and_gradients(fn):
    for case in load_cases("distributed_clip"):
        world, image, text, scale = _case(case)
        results, backward_calls = _shares(fn, world, image, text, scale, backward=True)
        mean = sum(share.item() for share, _ in results) / world
        if not _close(mean, case["loss"], 1e-8, 1e-10):
            low = any(share.dtype != torch.float64 for share, _ in results)
            raise Fail(f"{world} ranks: the mean of the shares is {mean:.8f}, clip_loss of the "
                       f"global batch {case['loss']:.8f}", measured=f"{mean:.8f}",
                       expected=f"{case['loss']:.8f}", diagnosis=FLOAT32 if low else None,
                       conclusive=low)
        grads = [g for _, g in results]
        if any(g is None for rank in grads for g in rank):
            raise Fail(f"{world} ranks: an input received no gradient", conclusive=False)
        averaged = {
            "image_emb": torch.cat([g[0] for g in grads]) / world,
            "text_emb": torch.cat([g[1] for g in grads]) / world,
            "logit_scale": sum(g[2] for g in grads) / world,
        }
        for name, got in averaged.items():
            want = torch.tensor(case[f"grad_{name}"], dtype=torch.float64)
            if torch.allclose(got, want, rtol=1e-7, atol=1e-10):
                continue
            silent = not any(backward_calls)
            if silent:
                mistake = NOT_REDUCED
            elif torch.allclose(got, world * want, rtol=1e-7, atol=1e-10):
                mistake = MULTIPLIED
            else:
                mistake = None
            raise fail_naming(f"{world} ranks: the gradient of {name} averaged over the ranks "
                              "is not clip_loss's" + (" (no rank called a collective in its "
                                                      "backward pass)" if silent else ""),
                              mistake, hints=HINTS, measured="differs",
                              expected="clip_loss's gradient over the global batch")
    return "the mean and the averaged gradients match clip_loss, with 2, 3 and 4 ranks"


@checks.add(
    "float64 in, float64 out, on every rank",
    diagnosis=FLOAT32,
    hint="make every tensor you create with the inputs' dtype and device",
)
def keeps_float64(fn):
    world = 2
    image = _randn(4, 3, seed=930, dtype=torch.float64)
    text = _randn(4, 3, seed=931, dtype=torch.float64)
    (results, _) = _shares(fn, world, image, text, 5.0)
    for rank, (share, _) in enumerate(results):
        if share.dtype != torch.float64:
            raise Fail(f"rank {rank} gave a {share.dtype} share from float64 inputs",
                       measured=share.dtype, expected="torch.float64")
    return "float64 on both ranks"


@checks.add(
    "leaves its inputs unchanged, and gradients reach both towers and the scale",
    diagnosis=GRAPH_CUT,
    hint="stay in torch operations from the three inputs to the returned share",
)
def gradients_reach(fn):
    world = 2
    image, text = _randn(4, 5, seed=932), _randn(4, 5, seed=933)
    (results, _) = _shares(fn, world, image, text, 7.0, backward=True)
    for rank, (_, grads) in enumerate(results):
        missing = [name for name, g in zip(("image_emb", "text_emb", "logit_scale"), grads)
                   if g is None or not torch.isfinite(g).all() or not g.abs().max() > 0]
        if missing:
            raise Fail(f"rank {rank}: no useful gradient reached {' and '.join(missing)}")
    return "image, text and scale receive gradients on every rank"
