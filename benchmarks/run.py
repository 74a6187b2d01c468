"""Benchmarks (`make bench`): the machine's float32 matmul speed, how long a full grader.check
takes per graded name, and how long each solution notebook takes to run top to bottom in a
fresh kernel. Machines differ up to 3x: read the times against the GFLOP/s line."""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grader  # noqa: E402
from tests.nbtools import execute, load_graded, read, solution_paths  # noqa: E402


def bench_matmul(size=1024, repeats=20):
    """float32 matmul GFLOP/s on torch's default threads: the yardstick for the times below."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    seconds = time.perf_counter() - start
    print(f"machine: {2 * size ** 3 * repeats / seconds / 1e9:.0f} GFLOP/s float32 matmul "
          f"({size} x {size}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs)")


def bench_checks(repeats=5):
    print(f"grader.check on the reference implementation (median of {repeats} runs)")
    for path in solution_paths():
        namespace = load_graded(path)
        for name, checklist in grader.REGISTRY.items():
            if checklist.drill != path.stem:  # 02 defines its own nt_xent_loss: drill 01's name
                continue
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                report = grader.check(name, namespace[name])
                times.append(time.perf_counter() - start)
            slowest = max(report.results, key=lambda r: r.seconds)
            print(f"  {name:<22} {statistics.median(times):6.2f} s for {len(report.results):2d} "
                  f"checks (slowest: {slowest.seconds:.2f} s, {slowest.name!r})")


def bench_notebooks():
    print("solution notebooks, executed top to bottom in a fresh kernel (kernel start included)")
    for path in solution_paths():
        with tempfile.TemporaryDirectory() as scratch:  # nothing is left beside the solutions
            start = time.perf_counter()
            execute(read(path), cwd=scratch, timeout=600)
            print(f"  {path.name:<22} {time.perf_counter() - start:6.1f} s wall")


if __name__ == "__main__":
    bench_matmul()
    bench_checks()
    bench_notebooks()
