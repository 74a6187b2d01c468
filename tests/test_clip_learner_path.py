"""Drill 03 from the learner's side: a learner's own correct code, written differently from the
solution, passes every check and clears the demo's bar. (Timings: `make bench`.)"""

import re

import pytest

import grader
from tests.nbtools import SOLUTIONS, exec_sources, run_stub_with

SOLUTION = SOLUTIONS / "03_clip.ipynb"

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
}
DEFINES = {"clip_loss": "def clip_loss", "LogitScale": "class LogitScale",
           "zero_shot_classify": "def zero_shot_classify"}


@pytest.mark.parametrize("name", sorted(LEARNER))
def test_a_differently_written_correct_answer_passes_every_check(name):
    report = grader.check(name, exec_sources(LEARNER.values())[name])
    assert report.passed, str(report)


def test_a_learners_correct_code_runs_the_demo_and_clears_the_zero_shot_bar(tmp_path):
    text = run_stub_with(SOLUTION, LEARNER, DEFINES, tmp_path)
    ensemble = float(re.search(r"ensemble of 10: ([0-9.]+)", text).group(1))
    assert ensemble >= 0.85
