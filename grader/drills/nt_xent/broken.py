"""NT-Xent losses that are wrong on purpose, for drill 01's break-it cell.

Each function below is `nt_xent_loss(z1, z2, temperature)` with one classic red flag built in,
so that the demo can train with it and show what the mistake costs next to the learner's own
correct loss. None of them is a check and none is registered with the grader; the drill's
`__init__` does not import this module. Same stacking as the contract: rows k and k + N of
[z1; z2] are a positive pair.
"""

import torch
import torch.nn.functional as F


def _partners(n, device):
    return torch.arange(2 * n, device=device).roll(n)


def _self(m, device):
    return torch.eye(m, dtype=torch.bool, device=device)


def no_normalization(z1, z2, temperature=0.5):
    """Leaves out the L2 normalization: raw dot products over tau, so the logits are unbounded
    and the network can lower the loss by growing the norms of its outputs."""
    z = torch.cat([z1, z2])
    logits = (z @ z.T / temperature).masked_fill(_self(len(z), z.device), float("-inf"))
    return F.cross_entropy(logits, _partners(len(z1), z.device))


def no_diagonal_mask(z1, z2, temperature=0.5):
    """Leaves out the diagonal mask: every view is also a candidate for itself, with the largest
    logit of its row (1 / tau)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return F.cross_entropy(z @ z.T / temperature, _partners(len(z1), z.device))


def temperature_multiplied(z1, z2, temperature=0.5):
    """Leaves out the division by tau: the cosines are multiplied by it, so at tau = 0.2 every
    logit lies in [-0.2, 0.2] and the softmax is almost flat."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T * temperature).masked_fill(_self(len(z), z.device), float("-inf"))
    return F.cross_entropy(logits, _partners(len(z1), z.device))


def cross_view_only(z1, z2, temperature=0.5):
    """Leaves out the same-view negatives: only the N x N matrix of z1 against z2, so each
    anchor has N - 1 negatives instead of 2N - 2."""
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(z1), device=z1.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def interleaved_partner(z1, z2, temperature=0.5):
    """Leaves out the stacking order: the targets are those of an interleaved batch
    [a0, b0, a1, b1, ...], so row k is pulled towards row k xor 1, another sample's view."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / temperature).masked_fill(_self(len(z), z.device), float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(z), device=z.device) ^ 1)
