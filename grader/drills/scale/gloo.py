"""Real process groups on one machine, for drill 09's demo and tests: `run(body, world_size)`
starts `world_size` processes that form a gloo group over the loopback address 127.0.0.1 (a
free port picked at run time), calls `body(rank, world_size)` in each, and returns what each
returned, in rank order.

Not a check and not imported by the drill's `__init__`: the notebook and tests/test_distributed.py
import it by name. The processes are forked, so `body` may be a function defined in a notebook
cell (nothing is pickled on the way in; what `body` returns is pickled on the way back, so
return plain numbers, lists or CPU tensors). Everything is bounded: a rank that fails sends its
traceback back and the others are stopped; a group that has not finished within `timeout`
seconds is killed and reported. Linux and macOS only (fork).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import socket
import sys
import time
import traceback
from datetime import timedelta


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback_interface() -> str:
    return "lo0" if sys.platform == "darwin" else "lo"


def _rank_main(body, rank, world_size, port, timeout, conn):
    status, value = "ok", None
    try:
        import torch
        import torch.distributed as dist

        os.environ.setdefault("GLOO_SOCKET_IFNAME", _loopback_interface())
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world_size, timeout=timedelta(seconds=timeout))
        try:
            value = body(rank, world_size)
        finally:
            dist.destroy_process_group()
    except BaseException:  # sent to the parent, which raises it
        status, value = "error", traceback.format_exc()
    try:
        try:  # plain pickle, by value: torch's own reductions would share memory with a process
            payload = pickle.dumps((status, value))  # that is about to exit
        except Exception:
            payload = pickle.dumps(("error", traceback.format_exc()))
        conn.send_bytes(payload)
    finally:
        conn.close()
        os._exit(0)  # no atexit handlers or kernel machinery inherited from the parent


def run(body, world_size: int, *, timeout: float = 60.0) -> list:
    """[body(0, world_size), ..., body(world_size - 1, world_size)], each in a process of its
    own, all in one gloo group on 127.0.0.1; raises RuntimeError with the rank's traceback if
    one fails, TimeoutError if the group takes longer than `timeout` seconds."""
    # DistributedDataParallel imports torch._dynamo (and sympy) on first use: once here, before
    # the fork, instead of once in every rank.
    import torch._dynamo  # noqa: F401

    context = multiprocessing.get_context("fork")
    port = free_port()
    pipes, procs = [], []
    for rank in range(world_size):
        receive, send = context.Pipe(duplex=False)
        proc = context.Process(target=_rank_main, args=(body, rank, world_size, port, timeout,
                                                        send), daemon=True)
        proc.start()
        send.close()
        pipes.append(receive)
        procs.append(proc)
    results, deadline = [None] * world_size, time.monotonic() + timeout
    try:
        for rank, pipe in enumerate(pipes):
            left = deadline - time.monotonic()
            if left <= 0 or not pipe.poll(left):
                raise TimeoutError(f"rank {rank} of {world_size} did not finish within "
                                   f"{timeout:g} s")
            try:
                status, value = pickle.loads(pipe.recv_bytes())
            except EOFError:
                raise RuntimeError(f"rank {rank} of {world_size} died without a result "
                                   f"(exit code {procs[rank].exitcode})") from None
            if status == "error":
                raise RuntimeError(f"rank {rank} of {world_size} failed:\n{value}")
            results[rank] = value
    finally:
        for proc in procs:
            proc.join(max(0.0, min(5.0, deadline - time.monotonic())))
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        for pipe in pipes:
            pipe.close()
    return results
