"""Benchmarks (`make bench`): how long a full grader.check takes per graded name, and how long
each solution notebook takes to run top to bottom in a fresh kernel."""

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grader  # noqa: E402
from tests.nbtools import execute, load_graded, read, solution_paths  # noqa: E402


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
        start = time.perf_counter()
        execute(read(path), cwd=path.parent, timeout=600)
        print(f"  {path.name:<22} {time.perf_counter() - start:6.1f} s wall")


if __name__ == "__main__":
    bench_checks()
    bench_notebooks()
