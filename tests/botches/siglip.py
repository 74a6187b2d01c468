"""Classic mistakes in siglip_loss, each with words its diagnosis must contain."""

import torch
import torch.nn.functional as F

from tests.botches import Botch


def _unit(x):
    return F.normalize(x, dim=-1)


def _cos(image_emb, text_emb):
    return _unit(image_emb) @ _unit(text_emb).T


def _signs(n, like):
    return 2 * torch.eye(n, dtype=like.dtype, device=like.device) - 1


def _pairs(logits):
    """-log sigmoid(label * logit) for every pair, stable."""
    return -F.logsigmoid(_signs(len(logits), logits) * logits)


def mean_over_pairs(image_emb, text_emb, logit_scale, logit_bias):
    logits = logit_scale * _cos(image_emb, text_emb) + logit_bias
    targets = torch.eye(len(logits), dtype=logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, targets)  # the default mean over N^2


def not_divided(image_emb, text_emb, logit_scale, logit_bias):
    return _pairs(logit_scale * _cos(image_emb, text_emb) + logit_bias).sum()


def labels_zero_one(image_emb, text_emb, logit_scale, logit_bias):
    logits = logit_scale * _cos(image_emb, text_emb) + logit_bias
    labels = torch.eye(len(logits), dtype=logits.dtype)
    return -F.logsigmoid(labels * logits).sum() / len(logits)


def sign_flipped(image_emb, text_emb, logit_scale, logit_bias):
    logits = logit_scale * _cos(image_emb, text_emb) + logit_bias
    return F.softplus(_signs(len(logits), logits) * logits).sum() / len(logits)


def not_normalised(image_emb, text_emb, logit_scale, logit_bias):
    return _pairs(logit_scale * image_emb @ text_emb.T + logit_bias).sum() / len(image_emb)


def normalised_along_batch(image_emb, text_emb, logit_scale, logit_bias):
    cos = F.normalize(image_emb, dim=0) @ F.normalize(text_emb, dim=0).T
    return _pairs(logit_scale * cos + logit_bias).sum() / len(image_emb)


def scale_as_temperature(image_emb, text_emb, logit_scale, logit_bias):
    return _pairs(_cos(image_emb, text_emb) / logit_scale + logit_bias).sum() / len(image_emb)


def scale_exponentiated(image_emb, text_emb, logit_scale, logit_bias):
    return _pairs(logit_scale.exp() * _cos(image_emb, text_emb) + logit_bias).sum() / len(
        image_emb)


def bias_missing(image_emb, text_emb, logit_scale, logit_bias):
    return _pairs(logit_scale * _cos(image_emb, text_emb)).sum() / len(image_emb)


def bias_subtracted(image_emb, text_emb, logit_scale, logit_bias):
    return _pairs(logit_scale * _cos(image_emb, text_emb) - logit_bias).sum() / len(image_emb)


def bias_inside_scale(image_emb, text_emb, logit_scale, logit_bias):
    return _pairs(logit_scale * (_cos(image_emb, text_emb) + logit_bias)).sum() / len(image_emb)


def bias_after_labels(image_emb, text_emb, logit_scale, logit_bias):
    scaled = logit_scale * _cos(image_emb, text_emb)
    signed = _signs(len(scaled), scaled) * scaled + logit_bias
    return -F.logsigmoid(signed).sum() / len(scaled)


def both_directions(image_emb, text_emb, logit_scale, logit_bias):
    logits = logit_scale * _cos(image_emb, text_emb) + logit_bias
    return (_pairs(logits).sum() + _pairs(logits.T).sum()) / len(logits)


def softmax_of_clip(image_emb, text_emb, logit_scale, logit_bias):
    logits = logit_scale * _cos(image_emb, text_emb) + logit_bias
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def naive_log_sigmoid(image_emb, text_emb, logit_scale, logit_bias):
    logits = logit_scale * _cos(image_emb, text_emb) + logit_bias
    return -torch.log(torch.sigmoid(_signs(len(logits), logits) * logits)).sum() / len(logits)


def naive_softplus(image_emb, text_emb, logit_scale, logit_bias):
    logits = logit_scale * _cos(image_emb, text_emb) + logit_bias
    return torch.log1p(torch.exp(-_signs(len(logits), logits) * logits)).sum() / len(logits)


def clamped_sigmoid(image_emb, text_emb, logit_scale, logit_bias):
    logits = logit_scale * _cos(image_emb, text_emb) + logit_bias
    p = torch.sigmoid(_signs(len(logits), logits) * logits).clamp(min=1e-8)
    return -torch.log(p).sum() / len(logits)


def scale_as_number(image_emb, text_emb, logit_scale, logit_bias):
    return _pairs(logit_scale.item() * _cos(image_emb, text_emb) + logit_bias).sum() / len(
        image_emb)


def bias_as_number(image_emb, text_emb, logit_scale, logit_bias):
    return _pairs(logit_scale * _cos(image_emb, text_emb) + logit_bias.item()).sum() / len(
        image_emb)


def towers_detached(image_emb, text_emb, logit_scale, logit_bias):
    cos = _cos(image_emb.detach(), text_emb.detach())
    return _pairs(logit_scale * cos + logit_bias).sum() / len(image_emb)


def labels_anti_diagonal(image_emb, text_emb, logit_scale, logit_bias):
    logits = logit_scale * _cos(image_emb, text_emb) + logit_bias
    signs = _signs(len(logits), logits).flip(0)
    return -F.logsigmoid(signs * logits).sum() / len(logits)


def normalised_in_place(image_emb, text_emb, logit_scale, logit_bias):
    image = image_emb.div_(image_emb.norm(dim=-1, keepdim=True))
    return _pairs(logit_scale * image @ _unit(text_emb).T + logit_bias).sum() / len(image)


def through_float32(image_emb, text_emb, logit_scale, logit_bias):
    cos = _cos(image_emb.float(), text_emb.float())
    return _pairs(logit_scale.float() * cos + logit_bias.float()).sum() / len(cos)


_L = "siglip_loss"
CATALOGUE = [
    Botch("mean over the N x N pairs", _L, mean_over_pairs, "averaged over all N x N pairs"),
    Botch("not divided by N", _L, not_divided, "not divided by N"),
    Botch("labels 0 and 1", _L, labels_zero_one, "labels are 0 and 1"),
    Botch("sign flipped", _L, sign_flipped, "sign inside the sigmoid is flipped"),
    Botch("not normalised", _L, not_normalised, "not L2-normalised"),
    Botch("normalised along the batch", _L, normalised_along_batch, "wrong axis"),
    Botch("scale as a temperature", _L, scale_as_temperature, "used as a temperature"),
    Botch("scale exponentiated", _L, scale_exponentiated, "exponentiated again"),
    Botch("no bias", _L, bias_missing, "not added to the logits"),
    Botch("bias subtracted", _L, bias_subtracted, "subtracted"),
    Botch("bias inside the scale", _L, bias_inside_scale, "multiplied by logit_scale"),
    Botch("bias after the labels", _L, bias_after_labels, "after multiplying by the labels"),
    Botch("both directions added", _L, both_directions, "counted once"),
    Botch("a softmax (CLIP's loss)", _L, softmax_of_clip, "softmax cross-entropy"),
    Botch("log of the sigmoid", _L, naive_log_sigmoid, "computed naively"),
    Botch("log1p of exp", _L, naive_softplus, "computed naively"),
    Botch("clamped sigmoid", _L, clamped_sigmoid, "clamped"),
    Botch("scale as a number", _L, scale_as_number, "learned scale gets no gradient"),
    Botch("bias as a number", _L, bias_as_number, "learned bias gets no gradient"),
    Botch("towers detached", _L, towers_detached, "gradient is cut"),
    Botch("labels on the anti-diagonal", _L, labels_anti_diagonal, "not on the diagonal"),
    Botch("normalised in place", _L, normalised_in_place, "in-place"),
    Botch("through float32", _L, through_float32, "float32"),
]
