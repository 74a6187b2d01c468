"""More correct implementations, each written unlike the solution and unlike the learner-path
ones, so that every graded name has several that must pass every check (tests/test_under_load)."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def nt_xent_by_hand(z1, z2, temperature=0.5):
    """Log-sum-exp written out, the positives picked from the off-diagonal blocks."""
    z = torch.cat([z1, z2]) / torch.cat([z1, z2]).norm(dim=1, keepdim=True)
    sims = z @ z.T / temperature
    n = z1.shape[0]
    sims = sims - torch.diag(torch.full((2 * n,), math.inf, dtype=z.dtype, device=z.device))
    positives = torch.cat([sims.diagonal(n), sims.diagonal(-n)])
    return (torch.logsumexp(sims, dim=1) - positives).mean()


def nt_xent_two_halves(z1, z2, temperature=0.5):
    """Each direction as its own N x 2N problem: [cross-view | same-view without self]."""
    a, b = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    n = a.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=a.device)

    def half(u, v):
        logits = torch.cat([u @ v.T, (u @ u.T).masked_fill(eye, -math.inf)], dim=1) / temperature
        return F.cross_entropy(logits, torch.arange(n, device=u.device), reduction="sum")

    return (half(a, b) + half(b, a)) / (2 * n)


def clip_loss_log_softmax(image_emb, text_emb, logit_scale):
    logits = logit_scale * F.normalize(image_emb, dim=1) @ F.normalize(text_emb, dim=1).T
    i2t = -F.log_softmax(logits, dim=1).diagonal().mean()
    t2i = -F.log_softmax(logits, dim=0).diagonal().mean()
    return (i2t + t2i) / 2


class LogitScaleWithWhere(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.log_inverse_temperature = nn.Parameter(torch.tensor(1 / temperature).log())

    def forward(self):
        scale = torch.exp(self.log_inverse_temperature)
        return torch.where(scale > self.max_scale, torch.full_like(scale, self.max_scale), scale)


def zero_shot_by_einsum(image_emb, class_text_emb):
    scores = torch.einsum("nd,cd->nc", image_emb, class_text_emb)
    scores = scores / class_text_emb.norm(dim=1)  # an image's own length does not change argmax
    return scores.max(dim=1).indices


def dino_loss_stacked(student_out, teacher_out, center, student_temp=0.1, teacher_temp=0.04):
    """All views stacked: one (V, B, K) log-probability tensor, pairs masked out of a sum."""
    with torch.no_grad():
        targets = torch.softmax((torch.stack(list(teacher_out)) - center) / teacher_temp, -1)
    log_probs = torch.log_softmax(torch.stack(list(student_out)) / student_temp, -1)
    cross = -torch.einsum("tbk,sbk->tsb", targets, log_probs).mean(-1)  # (T, S)
    keep = torch.ones_like(cross, dtype=torch.bool)
    keep[torch.arange(len(teacher_out)), torch.arange(len(teacher_out))] = False
    return cross[keep].mean()


def update_center_weighted_sum(center, teacher_out, momentum=0.9):
    total = sum(t.detach().sum(0) for t in teacher_out)
    count = sum(t.shape[0] for t in teacher_out)
    return torch.lerp(total / count, center.detach(), momentum)


def ema_update_with_lerp(teacher, student, momentum):
    with torch.no_grad():
        for (_, p_t), (_, p_s) in zip(teacher.named_parameters(), student.named_parameters()):
            p_t.lerp_(p_s, 1 - momentum)


ALTERNATIVES = [
    ("nt_xent_loss", nt_xent_by_hand),
    ("nt_xent_loss", nt_xent_two_halves),
    ("clip_loss", clip_loss_log_softmax),
    ("LogitScale", LogitScaleWithWhere),
    ("zero_shot_classify", zero_shot_by_einsum),
    ("dino_loss", dino_loss_stacked),
    ("update_center", update_center_weighted_sum),
    ("ema_update", ema_update_with_lerp),
]
