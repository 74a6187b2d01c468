"""Drill 09's training script: two towers trained with your `distributed_clip_loss` on
torch.distributed, one process per rank, under torchrun (DistributedDataParallel, gloo, CPU).

The data: scikit-learn's digits, each image cut in two; the left half is one "modality", the
right half the other, and a pair is the two halves of one image (no labels anywhere). Every
step draws one global batch (the same on every rank: the generator is seeded alike) and each
rank takes its own block of rows. The loss and the gather come from a notebook: the cells
tagged `graded` of `--notebook` are run first (your saved drill notebook, or the solution), or
the Python file `--functions` (the notebook's 3.7 writes your cells into one).

One host, four processes:

    torchrun --standalone --nproc_per_node 4 -m grader.drills.scale.train

Several hosts (here two, four processes each), the same command on every host, HOST0 being an
address of the first that the others can reach:

    torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d \\
        --rdzv_endpoint HOST0:29500 --rdzv_id drill09 -m grader.drills.scale.train

(gloo picks its network interface from GLOO_SOCKET_IFNAME: set it to the interface that joins
the hosts, e.g. eth0; on one host the script uses the loopback interface.) Rank 0 prints one
JSON line: the loss before and after, the matching accuracy of held-out halves before and after,
the time per step and the time of the step's collectives, replayed on their own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[3]  # the repository, in a checkout


def load_graded(path: Path) -> dict:
    """The namespace of the notebook's cells tagged `graded` (your functions)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    namespace = {"__name__": f"notebook_{path.stem}"}
    for i, cell in enumerate(nb.cells):
        if "graded" in cell.metadata.get("tags", []):
            exec(compile(cell.source, f"{path.name}[cell {i}]", "exec"), namespace)
    return namespace


def halves():
    """Digits as (left halves, right halves), 1,500 for training and 297 held out."""
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float32).reshape(-1, 8, 8) / 16.0
    left, right = x[:, :, :4].reshape(len(x), -1), x[:, :, 4:].reshape(len(x), -1)
    return (left[:1500], right[:1500]), (left[1500:], right[1500:])


def tower():
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16))


class Towers(nn.Module):
    def __init__(self):
        super().__init__()
        self.image, self.text = tower(), tower()
        self.log_scale = nn.Parameter(torch.tensor(1 / 0.07).log())

    def forward(self, left, right):
        return self.image(left), self.text(right), self.log_scale.exp().clamp(max=100.0)


@torch.no_grad()
def matching_accuracy(model, left, right) -> float:
    """Top-1 accuracy of finding each held-out left half's own right half among all of them."""
    a, b, _ = model(left, right)
    sims = nn.functional.normalize(a, dim=1) @ nn.functional.normalize(b, dim=1).T
    return (sims.argmax(1) == torch.arange(len(left))).float().mean().item()


def collectives_time(params: int, rows: int, dim: int, repeats: int = 5) -> float:
    """Seconds for one step's collectives replayed alone: the all-reduce of the gradients that
    DDP makes, and, per tower, the forward all-gather and the backward all-reduce of the
    embeddings that gather_with_grad makes."""
    world = dist.get_world_size()
    flat, emb = torch.zeros(params), torch.zeros(rows, dim)
    parts, full = [torch.zeros(rows, dim) for _ in range(world)], torch.zeros(world * rows, dim)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(flat)
        for _ in range(2):
            dist.all_gather(parts, emb)
            dist.all_reduce(full)
    return (time.perf_counter() - start) / repeats


def train(loss_fn, *, steps=200, batch=128, lr=3e-3, seed=0) -> dict:
    """Train the towers with `loss_fn` in the process group this process belongs to; every rank
    returns the same summary (the figures rank 0 prints)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    if batch % world:
        raise ValueError(f"the global batch {batch} is not divisible by the world size {world}")
    torch.manual_seed(seed)  # the same initial weights on every rank (DDP checks them)
    model = Towers()
    ddp = nn.parallel.DistributedDataParallel(model)
    optimiser = torch.optim.Adam(ddp.parameters(), lr=lr)
    (left, right), (test_left, test_right) = halves()
    before = matching_accuracy(model, test_left, test_right)
    batches = torch.Generator().manual_seed(seed + 1)  # alike on every rank
    n = batch // world
    losses, step_seconds = [], []
    for _ in range(steps):
        rows = torch.randperm(len(left), generator=batches)[:batch][rank * n:(rank + 1) * n]
        start = time.perf_counter()
        share = loss_fn(*ddp(left[rows], right[rows]))
        optimiser.zero_grad()
        share.backward()
        optimiser.step()
        step_seconds.append(time.perf_counter() - start)
        losses.append(share.detach())
    losses = torch.stack(losses)
    dist.all_reduce(losses)  # the mean over the ranks of their shares: the global loss
    losses = (losses / world).tolist()
    params = sum(p.numel() for p in model.parameters())
    comm = collectives_time(params, n, 16)
    # DDP keeps the replicas equal: every rank holds rank 0's weights.
    mine = torch.cat([p.detach().flatten() for p in model.parameters()])
    theirs = mine.clone()
    dist.broadcast(theirs, 0)
    flags = torch.tensor([int(torch.equal(mine, theirs))])
    dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    after = matching_accuracy(model, test_left, test_right)
    step = sorted(step_seconds)[len(step_seconds) // 2]
    return {
        "world_size": world, "steps": steps, "global_batch": batch,
        "loss_first": round(losses[0], 4), "loss_last": round(sum(losses[-10:]) / 10, 4),
        "matching_before": round(before, 4), "matching_after": round(after, 4),
        "step_ms": round(1000 * step, 2), "collectives_ms": round(1000 * comm, 2),
        "bytes_per_step": 4 * (params + 2 * (n * 16 + world * n * 16)),
        "replicas_in_sync": bool(flags.item()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, default=ROOT / "solutions" / "09_scale.ipynb")
    parser.add_argument("--functions", type=Path, default=None,
                        help="a Python file defining distributed_clip_loss (instead of a notebook)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128, help="the global batch")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if "RANK" not in os.environ:  # run without torchrun: a group of one
        os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(_free_port()))
    if os.environ.get("LOCAL_WORLD_SIZE", "1") == os.environ.get("WORLD_SIZE"):  # one host
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo0" if sys.platform == "darwin" else "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    if args.functions is not None:
        namespace = {"__name__": "drill09_functions"}
        exec(compile(args.functions.read_text(), str(args.functions), "exec"), namespace)
    else:
        namespace = load_graded(args.notebook)
    loss_fn = namespace["distributed_clip_loss"]

    summary = train(loss_fn, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed)
    if dist.get_rank() == 0:
        print(json.dumps(summary))
    dist.destroy_process_group()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
