"""Deterministic inputs and tolerant comparisons shared by the drills' checks.

Every random input a check builds comes from its own seeded torch.Generator, so checks never
touch (or depend on) the global random state, and every run sees the same numbers.
"""

import torch


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def close(a: float, b: float, rel: float = 1e-4, abs_: float = 1e-5) -> bool:
    return abs(a - b) <= abs_ + rel * abs(b)
