"""SigLIP losses that are wrong on purpose, for drill 08's break-it cell: each has siglip_loss's
signature and makes one classic slip, so that the demo can train the towers with it and measure
what the slip costs. They are not checks, and the drill's package does not import them; the
notebook does."""

import torch
import torch.nn.functional as F


def _pair_losses(logits, labels):
    return -F.logsigmoid(labels * logits).sum() / logits.shape[0]


def labels_zero_one(image_emb, text_emb, logit_scale, logit_bias):
    """Labels 1 on the diagonal and 0 elsewhere inside -log sigmoid(label * logit): every
    negative pair costs log 2 whatever its logit, so the negatives push nothing apart."""
    logits = (logit_scale * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
              + logit_bias)
    return _pair_losses(logits, torch.eye(logits.shape[0], dtype=logits.dtype))


def no_bias(image_emb, text_emb, logit_scale, logit_bias):
    """The bias left out: logits t * cos, so that at the start every one of the N^2 - N
    negatives sits at a logit near t * cos instead of near -10."""
    logits = logit_scale * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
    n = logits.shape[0]
    return _pair_losses(logits, 2 * torch.eye(n, dtype=logits.dtype) - 1)


def unnormalized(image_emb, text_emb, logit_scale, logit_bias):
    """No L2 normalisation: raw dot products, so the towers set the size of the logits through
    the lengths of their embeddings."""
    logits = logit_scale * image_emb @ text_emb.T + logit_bias
    n = logits.shape[0]
    return _pair_losses(logits, 2 * torch.eye(n, dtype=logits.dtype) - 1)
