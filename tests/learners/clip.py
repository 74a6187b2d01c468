"""Drill 03, a learner's correct answers: log-sum-exp by hand, torch.minimum, cosine_similarity."""


SOLUTION = "03_clip"
# What the demo prints once its claims hold (it asserts them first).
DEMO_SAYS = r"ensemble of 10: "

# A learner's correct answers, deliberately unlike the solution: log-sum-exp by hand instead of
# F.cross_entropy, torch.minimum instead of clamp, F.cosine_similarity with broadcasting.
LEARNER = {
    "clip_loss": '''
import torch


def clip_loss(image_emb, text_emb, logit_scale):
    u = image_emb / image_emb.norm(dim=1, keepdim=True)
    v = text_emb / text_emb.norm(dim=1, keepdim=True)
    logits = logit_scale * (u @ v.T)
    positives = logits.diagonal()
    rows = torch.logsumexp(logits, dim=1) - positives
    cols = torch.logsumexp(logits, dim=0) - positives
    return 0.5 * (rows.mean() + cols.mean())
''',
    "LogitScale": '''
import math

import torch
import torch.nn as nn


class LogitScale(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.t = nn.Parameter(torch.tensor(-math.log(temperature)))

    def forward(self):
        cap = torch.tensor(self.max_scale, dtype=self.t.dtype, device=self.t.device)
        return torch.minimum(self.t.exp(), cap)
''',
    "zero_shot_classify": '''
import torch.nn.functional as F


def zero_shot_classify(image_emb, class_text_emb):
    sims = F.cosine_similarity(image_emb[:, None, :], class_text_emb[None, :, :], dim=-1)
    return sims.argmax(dim=1)
''',
    # The stretch names: norms by hand and a sum in place of the mean (the final normalisation
    # cancels the 1/T); a rank from a sort-free count of the strictly better and the tied.
    "ensemble_prompts": '''
import torch


def ensemble_prompts(prompt_emb):
    unit = prompt_emb / torch.linalg.vector_norm(prompt_emb, dim=2, keepdim=True)
    total = unit.sum(dim=1)
    return total / torch.linalg.vector_norm(total, dim=1, keepdim=True)
''',
    "recall_at_k": '''
import torch


def recall_at_k(similarity, k=1):
    n_queries = similarity.shape[0]
    own = similarity[torch.arange(n_queries), torch.arange(n_queries)].unsqueeze(1)
    better = (similarity > own).sum(dim=1)
    tied = (similarity == own).sum(dim=1) - 1
    found = ((better + tied) < k).sum().item()
    return found / n_queries
''',
}
DEFINES = {"clip_loss": "def clip_loss", "LogitScale": "class LogitScale",
           "zero_shot_classify": "def zero_shot_classify",
           "ensemble_prompts": "def ensemble_prompts", "recall_at_k": "def recall_at_k"}
