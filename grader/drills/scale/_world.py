"""A simulated process group: several ranks as threads of this process, for the checks of the
distributed names of drill 09.

The checks must run inside the grader's sandbox (one worker thread, a CPU-time limit, no
processes to spawn, no ports to open), yet see what a learner's code does when every rank runs
it. So `run_ranks(world_size, body)` runs `body(rank)` once per rank, rank 0 in the calling
thread and the others in threads of their own, while the functions of `torch.distributed` that
a rank calls (`is_initialized`, `get_rank`, `get_world_size`, `all_gather`,
`all_gather_into_tensor`, `all_reduce`, `reduce_scatter`, `reduce_scatter_tensor`,
`broadcast`, `scatter`, `gather`, `all_to_all`, `barrier`) are stood in for by collectives
that meet at a barrier and exchange tensors between the threads, as the processes of a real
group exchange them. A collective that one rank calls and the others never do times out, as a
real one would hang. The backward pass runs in the thread that calls backward(), so collectives
called by a custom autograd Function's backward meet too.

Learner code must reach the collectives through the module (`dist.all_gather`, with
`import torch.distributed as dist`): a name imported from it before the check keeps the real
function. The drill's contract says so. Nothing here is a real network: tests/test_distributed.py
and the notebook run the same code in real gloo processes on 127.0.0.1.
"""

from __future__ import annotations

import ctypes
import threading
from contextlib import contextmanager

import torch
import torch.distributed as dist

_WAIT = 5.0  # wall seconds a rank waits for the others at a collective
_LOCK = threading.Lock()  # one simulated world at a time


class RanksDisagree(Exception):
    """The ranks did not call the same collectives with tensors of the same shapes."""


class _World:
    def __init__(self, size):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=_WAIT)
        self.slots = [None] * size
        self.local = threading.local()
        self.backward_calls = [0] * size  # collectives called while autograd ran backward

    def rank(self):
        rank = getattr(self.local, "rank", None)
        if rank is None:
            raise RuntimeError("Default process group has not been initialized")
        return rank

    def exchange(self, what, value):
        """Every rank's `value`, in rank order, once all have called the same collective."""
        rank = self.rank()
        if torch._C._current_graph_task_id() != -1:
            self.backward_calls[rank] += 1
        self.slots[rank] = (what, value)
        try:
            self.barrier.wait()
            got = list(self.slots)
            self.barrier.wait()
        except threading.BrokenBarrierError:
            raise RanksDisagree(
                f"rank {rank} waited at {what} for the other ranks, which never came: every "
                "rank must call the same collectives in the same order") from None
        names = {name for name, _ in got}
        if names != {what}:
            self.barrier.abort()
            raise RanksDisagree(f"the ranks called different collectives at once: {sorted(names)}")
        return [v for _, v in got]


def _shapes_agree(what, tensors):
    if len({tuple(t.shape) for t in tensors}) != 1 or len({t.dtype for t in tensors}) != 1:
        raise RanksDisagree(f"the ranks passed tensors of different shapes or dtypes to {what}: "
                            + ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in tensors))


def _reduce(tensors, op):
    stacked = torch.stack(tensors)
    if op in (None, dist.ReduceOp.SUM):
        return stacked.sum(0)
    if op == dist.ReduceOp.AVG:
        return stacked.mean(0)
    if op == dist.ReduceOp.PRODUCT:
        return stacked.prod(0)
    if op == dist.ReduceOp.MAX:
        return stacked.max(0).values
    if op == dist.ReduceOp.MIN:
        return stacked.min(0).values
    raise RuntimeError(f"unsupported reduce op {op}")


class _Done:
    """What an `async_op=True` collective returns: the work is already done."""

    def wait(self, *args, **kwargs):
        return True

    def is_completed(self):
        return True


def _stand_ins(world):
    def result(async_op):
        return _Done() if async_op else None

    def all_gather(tensor_list, tensor, group=None, async_op=False):
        got = world.exchange("all_gather", tensor.detach().clone())
        _shapes_agree("all_gather", got)
        if len(tensor_list) != world.size:
            raise RuntimeError(f"all_gather needs a list of {world.size} tensors (one per rank), "
                               f"got {len(tensor_list)}")
        for out, value in zip(tensor_list, got):
            out.copy_(value)
        return result(async_op)

    def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
        got = world.exchange("all_gather_into_tensor", input_tensor.detach().clone())
        _shapes_agree("all_gather_into_tensor", got)
        output_tensor.copy_(torch.cat(got).reshape(output_tensor.shape))
        return result(async_op)

    def all_reduce(tensor, op=dist.ReduceOp.SUM, group=None, async_op=False):
        got = world.exchange("all_reduce", tensor.detach().clone())
        _shapes_agree("all_reduce", got)
        tensor.copy_(_reduce(got, op))
        return result(async_op)

    def reduce_scatter(output, input_list, op=dist.ReduceOp.SUM, group=None, async_op=False):
        got = world.exchange("reduce_scatter", [t.detach().clone() for t in input_list])
        mine = [pieces[world.rank()] for pieces in got]
        _shapes_agree("reduce_scatter", mine)
        output.copy_(_reduce(mine, op))
        return result(async_op)

    def reduce_scatter_tensor(output, input, op=dist.ReduceOp.SUM, group=None, async_op=False):
        got = world.exchange("reduce_scatter_tensor", input.detach().clone())
        _shapes_agree("reduce_scatter_tensor", got)
        output.copy_(_reduce(got, op).chunk(world.size)[world.rank()].reshape(output.shape))
        return result(async_op)

    def broadcast(tensor, src, group=None, async_op=False):
        got = world.exchange("broadcast", tensor.detach().clone())
        tensor.copy_(got[src])
        return result(async_op)

    def scatter(tensor, scatter_list=None, src=0, group=None, async_op=False, **kwargs):
        got = world.exchange("scatter", None if scatter_list is None else
                             [t.detach().clone() for t in scatter_list])
        tensor.copy_(got[src][world.rank()])
        return result(async_op)

    def gather(tensor, gather_list=None, dst=0, group=None, async_op=False, **kwargs):
        got = world.exchange("gather", tensor.detach().clone())
        if world.rank() == dst:
            for out, value in zip(gather_list, got):
                out.copy_(value)
        return result(async_op)

    def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op=False):
        got = world.exchange("all_to_all", [t.detach().clone() for t in input_tensor_list])
        for out, pieces in zip(output_tensor_list, got):
            out.copy_(pieces[world.rank()])
        return result(async_op)

    def barrier(group=None, async_op=False, device_ids=None):
        world.exchange("barrier", None)
        return result(async_op)

    def in_world():
        return getattr(world.local, "rank", None) is not None

    return {
        "is_available": lambda: True,
        "is_initialized": in_world,
        "get_rank": lambda group=None: world.rank(),
        "get_world_size": lambda group=None: world.size,
        "get_backend": lambda group=None: "gloo",
        "all_gather": all_gather,
        "all_gather_into_tensor": all_gather_into_tensor,
        "all_reduce": all_reduce,
        "reduce_scatter": reduce_scatter,
        "reduce_scatter_tensor": reduce_scatter_tensor,
        "broadcast": broadcast,
        "scatter": scatter,
        "gather": gather,
        "all_to_all": all_to_all,
        "barrier": barrier,
    }


@contextmanager
def _standing_in(world):
    saved = {name: getattr(dist, name) for name in _stand_ins(world)}
    for name, fn in _stand_ins(world).items():
        setattr(dist, name, fn)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(dist, name, fn)


def _stop(thread):
    """Ask a rank's thread that outlived its world to stop (a loop in learner code, say)."""
    for _ in range(20):
        if not thread.is_alive():
            return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                   ctypes.py_object(SystemExit))
        thread.join(0.05)


def run_ranks(world_size, body):
    """[body(0), ..., body(world_size - 1)], each called as that rank of a simulated group of
    `world_size`; the first exception a rank raised (not a rank left waiting by it) is raised
    here. Returns the list and, as a second item, how many collectives each rank called during
    backward passes."""
    world = _World(world_size)
    results, errors = [None] * world_size, []  # errors in the order they happened

    def play(rank):
        world.local.rank = rank
        try:
            results[rank] = body(rank)
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)  # list.append is atomic: the first to fail comes first
            world.barrier.abort()
        finally:
            world.local.rank = None

    def helper(rank):
        torch.set_num_threads(1)
        play(rank)

    with _LOCK, _standing_in(world):
        threads = [threading.Thread(target=helper, args=(r,), daemon=True,
                                    name=f"grader-rank-{r}") for r in range(1, world_size)]
        for t in threads:
            t.start()
        try:
            play(0)
            for t in threads:
                t.join(2 * _WAIT)
        finally:
            world.barrier.abort()
            for t in threads:
                _stop(t)
    if errors:
        # The rank that failed first; the others only stopped waiting for it.
        raise errors[0]
    if any(t.is_alive() for t in threads):
        raise RanksDisagree("a rank never finished")
    return results, world.backward_calls
