"""The tiny networks the checks build and own, never the learner's: one the learner's training
loop trains (SimCLR's, and the backbone-and-head shape MoCo, BYOL and SimSiam train too), and a
teacher/student pair for an EMA update (DINO's, and the momentum encoders of MoCo and BYOL).
Every one is built without moving torch's global generator.

- `seeded(seed)`: a block whose global draws start from `seed`, the generator restored after.
- `SimCLRNet(seed)`: backbone f (an 8 x 8 image to h, 24 numbers) and projector g (h to z, 12
  numbers); `representation(x)` is h, `forward(x)` is z. kit.trace hooks on its two parts.
- `EMANet(width)`, `ema_pair(seed, ...)`: a small network with nested layers, a bare Parameter
  and BatchNorm buffers, and a (teacher, student) pair of them with different, known values.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from ..inputs import gen


@contextmanager
def seeded(seed):
    """Within the block torch's global generator starts from `seed`; afterwards it is as before,
    so what is built there is reproducible and the learner's random state is left alone."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


class SimCLRNet(nn.Module):
    """A tiny SimCLR-shaped network owned by the grader: h has 24 numbers, z has 12."""

    H_DIM, Z_DIM = 24, 12

    def __init__(self, seed=0):
        super().__init__()
        with seeded(seed):
            self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(64, self.H_DIM), nn.ReLU())
            self.projector = nn.Sequential(nn.Linear(self.H_DIM, self.H_DIM), nn.ReLU(),
                                           nn.Linear(self.H_DIM, self.Z_DIM))

    def representation(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.projector(self.backbone(x))


class EMANet(nn.Module):
    """A small network with the parts an EMA must handle: nested layers, a bare Parameter,
    biases, and BatchNorm buffers (float running statistics and an integer counter)."""

    def __init__(self, width=4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, width), nn.BatchNorm1d(width), nn.ReLU())
        self.head = nn.Linear(width, 2)
        self.scale = nn.Parameter(torch.ones(2))


def ema_pair(seed, dtype=torch.float64, teacher_grad=False, width=4):
    """(teacher, student) EMANets with different, known parameters and buffers (the student's
    integer counter 8, the teacher's 7); the teacher's parameters require grad only when
    `teacher_grad`. The global generator is untouched."""
    with torch.random.fork_rng(devices=[]):
        teacher, student = EMANet(width), EMANet(width)
    for n, net in enumerate((teacher, student)):
        net.to(dtype)
        g = gen(seed + n)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
            for b in net.buffers():
                if b.is_floating_point():
                    b.copy_(torch.rand(b.shape, generator=g, dtype=dtype) + 0.5)
                else:
                    b.fill_(7 + n)
    for p in teacher.parameters():
        p.requires_grad_(teacher_grad)
    return teacher, student
