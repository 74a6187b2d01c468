"""Drill 07 from the learner's side: a learner's own correct code, written differently from the
solution, passes every check, and pasted into the stub runs the demo and clears its bars."""

from tests.learners.moco import LEARNER as _MOCO

SOLUTION = "07_barlow_vicreg"
GRADED = ["barlow_twins_loss", "vicreg_loss"]
# What the demo prints once its claims hold (it asserts them first).
DEMO_SAYS = r"asserted: "

# Correct answers unlike the solution's: Barlow Twins through torch's own batch normalisation
# and a mask, VICReg through torch.var and torch.cov.
LEARNER = {
    "barlow_twins_loss": '''
import torch
import torch.nn.functional as F


def barlow_twins_loss(z1, z2, lambd=5e-3):
    a = F.batch_norm(z1, None, None, training=True, eps=1e-5)
    b = F.batch_norm(z2, None, None, training=True, eps=1e-5)
    c = torch.einsum("ni,nj->ij", a, b) / a.shape[0]
    eye = torch.eye(c.shape[0], dtype=c.dtype, device=c.device)
    weights = eye + lambd * (1 - eye)
    return ((c - eye) ** 2 * weights).sum()
''',
    "vicreg_loss": '''
import torch


def vicreg_loss(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    d = z1.shape[1]
    invariance = ((z1 - z2) ** 2).mean()
    hinge = [torch.clamp(1 - (z.var(dim=0) + 1e-4).sqrt(), min=0).mean() for z in (z1, z2)]
    covariance = 0
    for z in (z1, z2):
        cov = torch.cov(z.T)
        covariance = covariance + (cov ** 2).sum() / d - (cov.diagonal() ** 2).sum() / d
    return sim_coeff * invariance + std_coeff * (hinge[0] + hinge[1]) / 2 + cov_coeff * covariance
''',
    # The helper pasted from drill 01, as drill 05's learner writes it.
    "nt_xent_loss": _MOCO["nt_xent_loss"],
}
DEFINES = {"barlow_twins_loss": "def barlow_twins_loss", "vicreg_loss": "def vicreg_loss",
           "nt_xent_loss": "def nt_xent_loss"}
