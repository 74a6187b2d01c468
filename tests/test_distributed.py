"""Drill 09's multi-process code, run for real: gloo process groups on 127.0.0.1 (a free port
picked at run time), every run bounded in time. The solution's distributed CLIP loss in 2 and 4
processes equals clip_loss in one, the grader's simulated group agrees with a real one, a
failing or missing rank is reported instead of hanging, and the training script runs under
torchrun."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from grader.drills.scale import gloo
from grader.drills.scale._world import run_ranks
from tests.nbtools import ROOT, SOLUTIONS, load_graded

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the gloo runner forks")
NS = load_graded(SOLUTIONS / "09_scale.ipynb")
LIMIT = 60  # seconds any one group may take


def _global_batch(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64),
            torch.randn(n, d, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("world", [2, 4])
def test_the_distributed_loss_in_real_processes_equals_one_process(world):
    image, text = _global_batch(8, 5, seed=world)
    leaves = [image.clone().requires_grad_(), text.clone().requires_grad_(),
              torch.tensor(7.0, dtype=torch.float64, requires_grad=True)]
    loss = NS["clip_loss"](*leaves)
    loss.backward()
    loss_fn = NS["distributed_clip_loss"]

    def body(rank, size):
        n = len(image) // size
        mine = [image[rank * n:(rank + 1) * n].clone().requires_grad_(),
                text[rank * n:(rank + 1) * n].clone().requires_grad_(),
                torch.tensor(7.0, dtype=torch.float64, requires_grad=True)]
        share = loss_fn(*mine)
        share.backward()
        return share.item(), [t.grad for t in mine]

    results = gloo.run(body, world, timeout=LIMIT)
    assert abs(sum(share for share, _ in results) / world - loss.item()) < 1e-12
    # What DDP does: average the gradients over the ranks.
    image_grad = torch.cat([grads[0] for _, grads in results]) / world
    text_grad = torch.cat([grads[1] for _, grads in results]) / world
    scale_grad = sum(grads[2] for _, grads in results) / world
    assert torch.allclose(image_grad, leaves[0].grad, rtol=0, atol=1e-12)
    assert torch.allclose(text_grad, leaves[1].grad, rtol=0, atol=1e-12)
    assert abs(scale_grad.item() - leaves[2].grad.item()) < 1e-12


def _gather_body(t, upstream, n):
    gather = NS["gather_with_grad"]

    def body(rank, *_):
        mine = t[rank * n:(rank + 1) * n].clone().requires_grad_()
        out = gather(mine)
        (upstream[rank] * out).sum().backward()
        return out.detach(), mine.grad

    return body


def test_the_simulated_group_of_the_grader_agrees_with_a_real_one():
    world, n = 3, 2
    t, _ = _global_batch(world * n, 4, seed=1)
    upstream = torch.randn(world, world * n, 4, generator=torch.Generator().manual_seed(2),
                           dtype=torch.float64)
    real = gloo.run(_gather_body(t, upstream, n), world, timeout=LIMIT)
    simulated, _ = run_ranks(world, _gather_body(t, upstream, n))
    for rank in range(world):
        assert torch.equal(real[rank][0], t) and torch.equal(simulated[rank][0], t)
        expected = upstream.sum(0)[rank * n:(rank + 1) * n]
        assert torch.allclose(real[rank][1], expected, rtol=0, atol=1e-12)
        assert torch.allclose(simulated[rank][1], expected, rtol=0, atol=1e-12)


def test_a_rank_that_fails_is_reported_with_its_traceback():
    def body(rank, world):
        if rank == 1:
            raise ValueError("rank one gives up")
        return rank

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="rank one gives up"):
        gloo.run(body, 2, timeout=LIMIT)
    assert time.monotonic() - start < LIMIT


def test_a_rank_left_waiting_times_out_instead_of_hanging():
    import torch.distributed as dist

    def body(rank, world):
        if rank == 0:
            dist.all_reduce(torch.ones(1))  # rank 1 never joins
        return rank

    start = time.monotonic()
    with pytest.raises((RuntimeError, TimeoutError)):
        gloo.run(body, 2, timeout=5)
    assert time.monotonic() - start < 20


def test_the_training_script_runs_under_torchrun_on_the_loopback_address():
    port = gloo.free_port()
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo0" if sys.platform == "darwin" else "lo",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(port), "-m",
         "grader.drills.scale.train", "--steps", "30"],
        capture_output=True, text=True, timeout=180, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["world_size"] == 2 and summary["replicas_in_sync"]
    assert summary["loss_last"] < summary["loss_first"]


@pytest.mark.filterwarnings("ignore")
def test_torchs_own_autograd_all_gather_passes_every_check_of_gather_with_grad():
    """The simulated group and the checks agree with torch's definition of the gradient: its
    deprecated autograd all-gather (whose backward pass goes through dist.scatter on gloo)."""
    import torch.distributed as dist
    import torch.distributed.nn.functional as autograd_collectives

    import grader

    def gather_with_grad(t):
        if not dist.is_initialized():
            return t
        return torch.cat(autograd_collectives.all_gather(t))

    report = grader.check("gather_with_grad", gather_with_grad, drill="09_scale")
    assert report.passed, str(report)
