"""Benchmarks (`make bench`): the machine's float32 matmul speed, how long a full grader.check
takes per graded name, how long each solution notebook takes to run top to bottom in a fresh
kernel, and how long `python -m grader grade` takes for a small class. Machines differ up to 3x:
read the times against the GFLOP/s line. Nothing is written inside the repository."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grader  # noqa: E402
import grader.clock  # noqa: E402
from tests.nbtools import SOLUTIONS, execute, load_graded, read, solution_paths  # noqa: E402


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


CLASS_SIZE = 5  # copies of one solution: a small class handing in the same drill


def _tree(folder: Path) -> dict:
    """Every file under folder with its size and modification time (caches and .venv aside)."""
    skip = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache"}
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(folder).parts)}


def _grade(flags, copies):
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "grader", "grade", "--json", "--no-progress",
                          *flags, *map(str, copies)], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"grading failed (exit {run.returncode}):\n{run.stdout}{run.stderr}")
    *entries, _summary = [json.loads(line) for line in run.stdout.splitlines()]
    return seconds, entries


def bench_grading(solution="02_simclr.ipynb"):
    print(f"python -m grader grade on {CLASS_SIZE} copies of solutions/{solution} "
          f"(process start, kernels and checks included)")
    before = _tree(ROOT)
    with tempfile.TemporaryDirectory() as scratch:
        stem = Path(solution).stem
        copies = [Path(scratch) / f"{stem}_learner{i}.ipynb" for i in range(CLASS_SIZE)]
        for copy in copies:
            shutil.copyfile(SOLUTIONS / solution, copy)
        for label, flags in (("every cell", []), ("--skip-demos", ["--skip-demos"]),
                             ("--skip-demos --jobs 2", ["--skip-demos", "--jobs", "2"])):
            seconds, entries = _grade(flags, copies)
            # Where one notebook's time goes: its checks, and the rest (kernel start, the torch
            # import, the cells it ran), measured in the kernel.
            each = statistics.median(e["seconds"] for e in entries)
            checks = statistics.median(sum(r["seconds"] for g in e["graded"]
                                           for r in g["report"]["results"]) for e in entries)
            print(f"  {label:<22} {seconds:6.1f} s total, {seconds / CLASS_SIZE:5.1f} s per "
                  f"notebook (one notebook: {each:.1f} s, of which checks {checks:.1f} s)")
    print("  kernel start and imports, once: " + _kernel_start())
    after = _tree(ROOT)
    changed = sorted(str(p.relative_to(ROOT)) for p in set(before) | set(after)
                     if before.get(p) != after.get(p))
    if changed:
        raise SystemExit("files in the repository changed while grading: " + ", ".join(changed))


def _kernel_start() -> str:
    """Seconds to start a fresh kernel, and to import grader (torch with it) in it."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    # As the grade command starts its kernels: this grader importable, the drill clock off.
    env = {**os.environ, grader.clock.ENV: "off",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    nb = new_notebook(cells=[new_code_cell("import torch"), new_code_cell("import grader")])
    with tempfile.TemporaryDirectory() as scratch:
        client = NotebookClient(nb, kernel_name="python3",
                                resources={"metadata": {"path": scratch}})
        start = time.perf_counter()
        with client.setup_kernel(env=env, stderr=subprocess.DEVNULL):
            started = time.perf_counter()
            client.execute_cell(nb.cells[0], 0)
            torch_done = time.perf_counter()
            client.execute_cell(nb.cells[1], 1)
            grader_done = time.perf_counter()
    return (f"kernel {started - start:.1f} s, import torch {torch_done - started:.1f} s, "
            f"import grader {grader_done - torch_done:.1f} s")


if __name__ == "__main__":
    bench_matmul()
    bench_checks()
    bench_notebooks()
    bench_grading()
