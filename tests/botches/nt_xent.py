"""Classic mistakes in nt_xent_loss, each with words its diagnosis must contain."""

import numpy as np
import torch
import torch.nn.functional as F

from tests.botches import Botch


def _partner(n, device=None):
    return torch.arange(2 * n, device=device).roll(n)


def _masked_logits(z, temperature):
    logits = z @ z.T / temperature
    return logits.masked_fill(torch.eye(len(z), dtype=torch.bool), float("-inf"))


def no_normalization(z1, z2, temperature=0.5):
    z = torch.cat([z1, z2])
    return F.cross_entropy(_masked_logits(z, temperature), _partner(len(z1)))


def normalized_wrong_axis(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=0)
    return F.cross_entropy(_masked_logits(z, temperature), _partner(len(z1)))


def no_diagonal_mask(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return F.cross_entropy(z @ z.T / temperature, _partner(len(z1)))


def diagonal_filled_with_zero(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / temperature).masked_fill(torch.eye(len(z), dtype=torch.bool), 0.0)
    return F.cross_entropy(logits, _partner(len(z1)))


def interleaved_partner(z1, z2, temperature=0.5):
    # Treats the batch as [a0, b0, a1, b1, ...] although it was stacked as [z1; z2].
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return F.cross_entropy(_masked_logits(z, temperature), torch.arange(len(z)) ^ 1)


def temperature_multiplied(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T * temperature).masked_fill(torch.eye(len(z), dtype=torch.bool), -1e9)
    return F.cross_entropy(logits, _partner(len(z1)))


def sum_instead_of_mean(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return F.cross_entropy(_masked_logits(z, temperature), _partner(len(z1)), reduction="sum")


def one_direction_only(z1, z2, temperature=0.5):
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = _masked_logits(z, temperature)[:n]
    return F.cross_entropy(logits, torch.arange(n, 2 * n))


def cross_view_only(z1, z2, temperature=0.5):
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(z1))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def numpy_round_trip(z1, z2, temperature=0.5):
    a = np.concatenate([z1.detach().numpy(), z2.detach().numpy()])
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    logits = a @ a.T / temperature
    np.fill_diagonal(logits, -np.inf)
    n = len(z1)
    m = logits.max(axis=1, keepdims=True)
    log_prob = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return torch.tensor(-log_prob[np.arange(2 * n), (np.arange(2 * n) + n) % (2 * n)].mean())


def naive_exp(z1, z2, temperature=0.5):
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    e = torch.exp(z @ z.T / temperature) * (1 - torch.eye(2 * n, dtype=z.dtype))
    positive = e[torch.arange(2 * n), _partner(n)]
    return -torch.log(positive / e.sum(dim=1)).mean()


def normalizes_inputs_in_place(z1, z2, temperature=0.5):
    z1.div_(z1.norm(dim=1, keepdim=True))
    z2.div_(z2.norm(dim=1, keepdim=True))
    z = torch.cat([z1, z2])
    return F.cross_entropy(_masked_logits(z, temperature), _partner(len(z1)))


def detaches_second_view(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2.detach()]), dim=1)
    return F.cross_entropy(_masked_logits(z, temperature), _partner(len(z1)))


def casts_to_float32(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    return F.cross_entropy(_masked_logits(z, temperature), _partner(len(z1)))


def squeezes_batch(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1.squeeze(), z2.squeeze()]), dim=1)
    return F.cross_entropy(_masked_logits(z, temperature), _partner(len(z1)))


def returns_per_anchor_losses(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return F.cross_entropy(_masked_logits(z, temperature), _partner(len(z1)), reduction="none")


def ignores_temperature(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return F.cross_entropy(_masked_logits(z, 1.0), _partner(len(z1)))


def returns_python_float(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return F.cross_entropy(_masked_logits(z, temperature), _partner(len(z1))).item()


def both_directions_added(z1, z2, temperature=0.5):
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    per_anchor = F.cross_entropy(_masked_logits(z, temperature), _partner(n), reduction="none")
    return per_anchor[:n].mean() + per_anchor[n:].mean()


G = "nt_xent_loss"
CATALOGUE = [
    Botch("no normalization", G, no_normalization, "not l2-normalised"),
    Botch("normalized along the wrong axis", G, normalized_wrong_axis, "wrong axis"),
    Botch("no diagonal mask", G, no_diagonal_mask, "diagonal is not masked"),
    Botch("diagonal filled with 0", G, diagonal_filled_with_zero, "set to 0 instead of -inf"),
    Botch("wrong partner index", G, interleaved_partner, "not the partner view"),
    Botch("temperature multiplied", G, temperature_multiplied, "multiplied by the temperature"),
    Botch("temperature ignored", G, ignores_temperature, "temperature argument is ignored"),
    Botch("sum instead of mean", G, sum_instead_of_mean, "summed instead of averaged"),
    Botch("one direction only", G, one_direction_only, "only one direction"),
    Botch("cross-view N x N logits only", G, cross_view_only, "cross-view similarities"),
    Botch("both directions added", G, both_directions_added, "two directions are added"),
    Botch("numpy round trip", G, numpy_round_trip, "gradient is cut"),
    Botch("naive exp overflows", G, naive_exp, "overflows"),
    Botch("in-place normalization of the inputs", G, normalizes_inputs_in_place, "in-place"),
    Botch("stop-gradient on one view", G, detaches_second_view, "detached"),
    Botch("computes in float32", G, casts_to_float32, "float32"),
    Botch("squeeze breaks N = 1", G, squeezes_batch, "single pair"),
    Botch("per-anchor losses returned", G, returns_per_anchor_losses, "not reduced"),
    Botch("returns a Python float", G, returns_python_float, "left torch"),
]


# -- info_nce_loss (the stretch) ---------------------------------------------------------------


def _unit(*ts):
    return [F.normalize(t, dim=1) for t in ts]


def _first(n, device=None):
    return torch.zeros(n, dtype=torch.long, device=device)


def negatives_not_normalized(query, positive_key, negative_keys, temperature=0.1):
    q, k = _unit(query, positive_key)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ negative_keys.T], 1) / temperature
    return F.cross_entropy(logits, _first(len(q)))


def keys_not_normalized(query, positive_key, negative_keys, temperature=0.1):
    (q,) = _unit(query)
    logits = torch.cat([(q * positive_key).sum(1, keepdim=True), q @ negative_keys.T], 1)
    return F.cross_entropy(logits / temperature, _first(len(q)))


def target_is_row_number(query, positive_key, negative_keys, temperature=0.1):
    q, k, n = _unit(query, positive_key, negative_keys)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ n.T], 1) / temperature
    return F.cross_entropy(logits, torch.arange(len(q)))


def info_nce_temperature_multiplied(query, positive_key, negative_keys, temperature=0.1):
    q, k, n = _unit(query, positive_key, negative_keys)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ n.T], 1) * temperature
    return F.cross_entropy(logits, _first(len(q)))


def info_nce_summed(query, positive_key, negative_keys, temperature=0.1):
    q, k, n = _unit(query, positive_key, negative_keys)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ n.T], 1) / temperature
    return F.cross_entropy(logits, _first(len(q)), reduction="sum")


def negatives_detached(query, positive_key, negative_keys, temperature=0.1):
    q, k, n = _unit(query, positive_key, negative_keys.detach())
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ n.T], 1) / temperature
    return F.cross_entropy(logits, _first(len(q)))


def info_nce_naive_exp(query, positive_key, negative_keys, temperature=0.1):
    q, k, n = _unit(query, positive_key, negative_keys)
    positive = torch.exp((q * k).sum(1) / temperature)
    negatives = torch.exp(q @ n.T / temperature).sum(1)
    return -torch.log(positive / (positive + negatives)).mean()


def positive_among_negatives(query, positive_key, negative_keys, temperature=0.1):
    q, k, n = _unit(query, positive_key, negative_keys)
    positive = (q * k).sum(1, keepdim=True)
    logits = torch.cat([positive, positive, q @ n.T], 1) / temperature
    return F.cross_entropy(logits, _first(len(q)))


def other_keys_as_negatives(query, positive_key, negative_keys, temperature=0.1):
    # Reads the negatives as "the batch's other keys, plus negative_keys", SimCLR-style.
    q, k, n = _unit(query, positive_key, negative_keys)
    logits = q @ torch.cat([k, n]).T / temperature
    return F.cross_entropy(logits, torch.arange(len(q)))


I = "info_nce_loss"
CATALOGUE += [
    Botch("negatives not normalized", I, negatives_not_normalized,
          "the negative keys are not l2-normalised"),
    Botch("keys and negatives not normalized", I, keys_not_normalized,
          "the positive keys and the negative keys are not l2-normalised"),
    Botch("target is the row number", I, target_is_row_number, "the target is not the positive"),
    Botch("temperature multiplied (InfoNCE)", I, info_nce_temperature_multiplied,
          "multiplied by the temperature"),
    Botch("sum over queries", I, info_nce_summed, "summed instead of averaged"),
    Botch("negatives detached", I, negatives_detached, "negative_keys is detached"),
    Botch("naive exp overflows (InfoNCE)", I, info_nce_naive_exp, "overflows"),
    Botch("positive counted among the negatives", I, positive_among_negatives,
          "positive is counted twice"),
    Botch("the other queries' keys as negatives", I, other_keys_as_negatives,
          "other queries' positive keys"),
]

# The learner's path (tests/test_notebooks.py): this text is pasted into the stub's cell, as a
# learner would type it, and the grader cell must name the mistake.
LEARNER_PATH = {
    "solution": "01_nt_xent",
    "name": "no diagonal mask",
    "graded_name": "nt_xent_loss",
    "expect": "the diagonal is not masked",
    "source": '''
def nt_xent_loss(z1, z2, temperature=0.5):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    logits = z @ z.T / temperature
    return F.cross_entropy(logits, torch.arange(2 * n).roll(n))
''',
}
