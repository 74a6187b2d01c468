"""Drill 05 from the learner's side: a learner's own correct code, written differently from the
solution, passes every check, and pasted into the stub runs the demo and clears its bars."""

SOLUTION = "05_moco"
GRADED = ["KeyQueue", "moco_loss"]
# What the demo prints once its claims hold (it asserts them first).
DEMO_SAYS = r"asserted: MoCo beats the random encoder it started from"

# Correct answers unlike the solution's: a queue kept by concatenation, newest rows last, the
# loss through einsum and an explicit log-sum-exp; the pasted helpers from drills 01 and 04
# written another way too.
LEARNER = {
    "KeyQueue": '''
import torch


class KeyQueue:
    def __init__(self, size, dim, generator=None):
        rows = torch.randn(size, dim, generator=generator)
        self._rows = rows / rows.norm(dim=-1, keepdim=True)

    @property
    def keys(self):
        return self._rows

    def enqueue(self, keys):
        fresh = keys.detach().clone().to(self._rows)
        self._rows = torch.cat([self._rows.to(fresh.device), fresh])[-len(self._rows):]
''',
    "moco_loss": '''
import torch


def moco_loss(q, k, queue_keys, temperature=0.07):
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    own = torch.einsum("nd,nd->n", q, k) / temperature
    others = torch.einsum("nd,kd->nk", q, queue_keys) / temperature
    everything = torch.cat([own.unsqueeze(1), others], dim=1)
    return (torch.logsumexp(everything, dim=1) - own).mean()
''',
    "ema_update": '''
import torch


@torch.no_grad()
def ema_update(teacher, student, momentum):
    for mine, theirs in zip(teacher.parameters(), student.parameters()):
        mine.lerp_(theirs, 1.0 - momentum)
''',
    "nt_xent_loss": '''
import torch
import torch.nn.functional as F


def nt_xent_loss(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    sim = z @ z.t() / temperature
    sim = sim - torch.diag(torch.full((len(z),), float("inf"), dtype=z.dtype, device=z.device))
    n = len(z1)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)
''',
}
DEFINES = {"KeyQueue": "class KeyQueue", "moco_loss": "def moco_loss",
           "ema_update": "def ema_update", "nt_xent_loss": "def nt_xent_loss"}
