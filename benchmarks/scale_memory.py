"""Drill 09's memory benchmark: the chunked NT-Xent loss at N = 65,536 pairs, D = 128 (a
2N x 2N float32 matrix would be 64 GiB), forward and backward, with its peak memory.

    .venv/bin/python benchmarks/scale_memory.py [--n 65536] [--dim 128] [--chunk 256]

The loss is the `chunked_nt_xent_loss` of a notebook's `graded` cells (default: the solution).
Two measures of peak memory: the bytes of the tensors torch creates during the forward and
backward passes, counted while they live (grader/drills/scale/_memory.py's Footprint, the
measure of the notebook's plot and of the grader's memory checks), and the process's peak
resident set size as the OS reports it (ru_maxrss), which includes Python, torch and the
inputs. Prints one JSON line. It takes minutes on two cores: the notebook shows N up to a few
thousand and quotes this script's figure.
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.drills.scale._memory import Footprint  # noqa: E402
from grader.drills.scale.train import load_graded  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=65536)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--notebook", type=Path, default=ROOT / "solutions" / "09_scale.ipynb")
    args = parser.parse_args()
    loss_fn = load_graded(args.notebook)["chunked_nt_xent_loss"]
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(args.n, args.dim, generator=g).requires_grad_()
    z2 = (z1.detach() + 0.5 * torch.randn(args.n, args.dim, generator=g)).requires_grad_()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    footprint = Footprint()
    start = time.perf_counter()
    with footprint:
        loss = loss_fn(z1, z2, temperature=0.5, chunk_size=args.chunk)
        loss.backward()
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    full = (2 * args.n) ** 2 * 4
    print(json.dumps({
        "n": args.n, "dim": args.dim, "chunk_size": args.chunk, "threads": torch.get_num_threads(),
        "loss": round(loss.item(), 6), "seconds": round(seconds, 1),
        "peak_created_gib": round(footprint.peak / 2 ** 30, 3),
        "largest_tensor_gib": round(footprint.largest / 2 ** 30, 3),
        "process_peak_rss_gib": round(rss / 2 ** 20, 3),
        "rss_before_gib": round(rss_before / 2 ** 20, 3),
        "full_matrix_gib": round(full / 2 ** 30, 1),
        "grad_finite": bool(torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()),
    }))


if __name__ == "__main__":
    main()
