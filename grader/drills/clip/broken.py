"""Losses that are wrong on purpose, for the break-it cell of drill 03 (CLIP).

Each function below has `clip_loss`'s signature and leaves out exactly one thing the correct loss
does, so that the demo can train the towers with it and measure what that costs. They are not
checks, not registered anywhere, and not imported by this drill's `__init__`: the notebook
imports this module by name. Red flags that are a training choice rather than a line of the loss
(a temperature that is not learned) are built in the notebook from the learner's own code.
"""

import torch
import torch.nn.functional as F


def _diagonal(logits):
    return torch.arange(logits.shape[0], device=logits.device)


def image_to_text_only(image_emb, text_emb, logit_scale):
    """Leaves out the text-to-image direction: only the rows' cross-entropy, each image picking
    its caption; no caption is ever asked to pick its image."""
    logits = logit_scale * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
    return F.cross_entropy(logits, _diagonal(logits))


def unnormalized(image_emb, text_emb, logit_scale):
    """Leaves out the L2 normalisation: raw dot products times the scale, so the towers can make
    the logits as large as they like by making the embeddings long."""
    logits = logit_scale * image_emb @ text_emb.T
    targets = _diagonal(logits)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def targets_all_zero(image_emb, text_emb, logit_scale):
    """Leaves out the diagonal targets: every image and every caption is told that pair 0 is its
    match, so nothing ties image i to caption i."""
    logits = logit_scale * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
    targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
