"""MoCo losses that are wrong on purpose, for drill 05's break-it cell (3.9): each one makes a
single classic slip, so that the demo can show what the slip costs. They are not checks and the
drill's package does not import them; the notebook does."""

import torch
import torch.nn.functional as F


def _logits(q, k, queue_keys):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    return (q * k).sum(dim=1, keepdim=True), q @ queue_keys.T


def target_is_the_row(q, k, queue_keys, temperature=0.07):
    """The positive is in column 0 of every row, but the target is each row's own index."""
    positive, negatives = _logits(q, k, queue_keys)
    logits = torch.cat([positive, negatives], dim=1) / temperature
    return F.cross_entropy(logits, torch.arange(len(q), device=q.device))


def temperature_on_the_queue_only(q, k, queue_keys, temperature=0.07):
    """Only the queue's similarities are divided by the temperature; the positive's is not."""
    positive, negatives = _logits(q, k, queue_keys)
    logits = torch.cat([positive, negatives / temperature], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))
