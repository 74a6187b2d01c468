"""Drill 09 from the learner's side: a learner's own correct code, written differently from the
solution, passes every check, and pasted into the stub runs the demo and clears its bars."""

from tests.learners.clip import LEARNER as _CLIP
from tests.learners.moco import LEARNER as _MOCO

SOLUTION = "09_scale"
GRADED = ["chunked_nt_xent_loss", "gather_with_grad", "distributed_clip_loss"]
# What the demo prints once its claims hold (it asserts them first).
DEMO_SAYS = r"asserted: 2 and 4 gloo processes give one process's loss and gradients"

# Correct answers unlike the solution's: the chunked loss through activation checkpointing
# (each chunk's row losses recomputed by torch.utils.checkpoint in the backward pass) instead of
# a hand-written backward; the gather through all_gather_into_tensor and a narrow() of the
# all-reduced gradient; the distributed loss through log_softmax and gather().
LEARNER = {
    "chunked_nt_xent_loss": '''
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def _rows_loss(z, start, stop, temperature):
    m = z.shape[0]
    idx = torch.arange(start, stop, device=z.device)
    sims = torch.einsum("rd,md->rm", z[start:stop], z) / temperature
    self_mask = idx.unsqueeze(1) == torch.arange(m, device=z.device).unsqueeze(0)
    sims = sims.masked_fill(self_mask, float("-inf"))
    partner = (idx + m // 2) % m
    return (torch.logsumexp(sims, dim=1) - sims.gather(1, partner.unsqueeze(1)).squeeze(1)).sum()


def chunked_nt_xent_loss(z1, z2, temperature=0.5, chunk_size=1024):
    z = torch.cat([z1, z2]) / torch.cat([z1, z2]).norm(dim=1, keepdim=True).clamp_min(1e-12)
    m = z.shape[0]
    total = z.new_zeros(())
    for start in range(0, m, chunk_size):
        stop = min(start + chunk_size, m)
        total = total + checkpoint(_rows_loss, z, start, stop, temperature, use_reentrant=False)
    return total / m
''',
    "gather_with_grad": '''
import torch
import torch.distributed as dist


class AllGatherGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        world = dist.get_world_size()
        out = t.new_empty((world * t.shape[0],) + tuple(t.shape[1:]))
        dist.all_gather_into_tensor(out, t.contiguous())
        ctx.rows = t.shape[0]
        return out

    @staticmethod
    def backward(ctx, grad_output):
        total = grad_output.clone().contiguous()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.narrow(0, dist.get_rank() * ctx.rows, ctx.rows)


def gather_with_grad(t):
    if dist.is_available() and dist.is_initialized():
        return AllGatherGrad.apply(t)
    return t
''',
    "distributed_clip_loss": '''
import torch
import torch.distributed as dist
import torch.nn.functional as F


def distributed_clip_loss(image_emb, text_emb, logit_scale):
    img = image_emb / image_emb.norm(dim=-1, keepdim=True)
    txt = text_emb / text_emb.norm(dim=-1, keepdim=True)
    grouped = dist.is_available() and dist.is_initialized()
    offset = dist.get_rank() * img.shape[0] if grouped else 0
    cols = torch.arange(img.shape[0], device=img.device) + offset
    i2t = torch.log_softmax(logit_scale * img @ gather_with_grad(txt).T, dim=1)
    t2i = torch.log_softmax(logit_scale * txt @ gather_with_grad(img).T, dim=1)
    picked = i2t.gather(1, cols[:, None]) + t2i.gather(1, cols[:, None])
    return -picked.mean() / 2
''',
    # The helpers pasted from drills 01 and 03, as those drills' learners write them.
    "nt_xent_loss": _MOCO["nt_xent_loss"],
    "clip_loss": _CLIP["clip_loss"],
}
DEFINES = {"chunked_nt_xent_loss": "def chunked_nt_xent_loss",
           "gather_with_grad": "def gather_with_grad",
           "distributed_clip_loss": "def distributed_clip_loss",
           "nt_xent_loss": "def nt_xent_loss", "clip_loss": "def clip_loss"}
