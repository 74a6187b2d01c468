"""Drill 06 from the learner's side: a learner's own correct code, written differently from the
solution, passes every check, and pasted into the stub runs the demo and clears its bars."""

from tests.learners.moco import LEARNER as _MOCO

SOLUTION = "06_byol_simsiam"
GRADED = ["byol_loss", "simsiam_loss"]
# What the demo prints once its claims hold (it asserts them first).
DEMO_SAYS = r"asserted: "

# Correct answers unlike the solution's: BYOL as a squared distance of unit vectors under
# no_grad for the target, SimSiam through one concatenated batch.
LEARNER = {
    "byol_loss": '''
import torch


def byol_loss(p, z):
    with torch.no_grad():
        target = z / z.norm(dim=-1, keepdim=True)
    online = p / p.norm(dim=-1, keepdim=True)
    return (online - target).pow(2).sum(dim=-1).mean()
''',
    "simsiam_loss": '''
import torch
import torch.nn.functional as F


def simsiam_loss(p1, p2, z1, z2):
    predictions = F.normalize(torch.cat([p1, p2]), dim=-1)
    targets = F.normalize(torch.cat([z2, z1]).detach(), dim=-1)
    return -(predictions * targets).sum(dim=-1).mean()
''',
    # The helpers pasted from drills 04 and 01, as drill 05's learner writes them.
    "ema_update": _MOCO["ema_update"],
    "nt_xent_loss": _MOCO["nt_xent_loss"],
}
DEFINES = {"byol_loss": "def byol_loss", "simsiam_loss": "def simsiam_loss",
           "ema_update": "def ema_update", "nt_xent_loss": "def nt_xent_loss"}
