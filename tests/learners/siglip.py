"""Drill 08 from the learner's side: a learner's own correct siglip_loss, written differently
from the solution (binary cross-entropy with 0/1 targets, summed and divided by N), passes every
check, and pasted into the stub with drill 03's clip_loss runs the demo and clears its bars."""

from tests.learners.clip import LEARNER as _CLIP

SOLUTION = "08_siglip"
GRADED = ["siglip_loss"]
# What the demo prints once its claims hold (it asserts them first).
DEMO_SAYS = r"asserted: "

LEARNER = {
    "siglip_loss": '''
import torch
import torch.nn.functional as F


def siglip_loss(image_emb, text_emb, logit_scale, logit_bias):
    u = image_emb / image_emb.norm(dim=1, keepdim=True)
    v = text_emb / text_emb.norm(dim=1, keepdim=True)
    logits = torch.matmul(u, v.transpose(0, 1)) * logit_scale + logit_bias
    targets = torch.eye(logits.shape[0], dtype=logits.dtype, device=logits.device)
    total = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    return total / logits.shape[0]
''',
    # The helper pasted from drill 03, as drill 03's learner writes it.
    "clip_loss": _CLIP["clip_loss"],
}
DEFINES = {"siglip_loss": "def siglip_loss", "clip_loss": "def clip_loss"}
