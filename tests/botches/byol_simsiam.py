"""Classic mistakes in byol_loss and simsiam_loss, each with words its diagnosis must contain."""

import torch.nn.functional as F

from tests.botches import Botch


def _unit(x):
    return F.normalize(x, dim=1)


def byol_no_stop_gradient(p, z):
    return (2 - 2 * (_unit(p) * _unit(z)).sum(1)).mean()


def byol_not_normalised(p, z):
    return (p - z.detach()).square().sum(1).mean()


def byol_negative_cosine(p, z):
    return -(_unit(p) * _unit(z.detach())).sum(1).mean()


def byol_one_minus(p, z):
    return (1 - (_unit(p) * _unit(z.detach())).sum(1)).mean()


def byol_summed(p, z):
    return (2 - 2 * (_unit(p) * _unit(z.detach())).sum(1)).sum()


def byol_mse_per_dimension(p, z):
    return F.mse_loss(_unit(p), _unit(z.detach()))


def byol_wrong_axis(p, z):
    return (2 - 2 * (F.normalize(p, dim=0) * F.normalize(z.detach(), dim=0)).sum(1)).mean()


def byol_in_place(p, z):
    p = p.div_(p.norm(dim=1, keepdim=True))
    return (2 - 2 * (p * _unit(z.detach())).sum(1)).mean()


def byol_float32(p, z):
    return (2 - 2 * (_unit(p.float()) * _unit(z.detach().float())).sum(1)).mean()


def _d(p, z):
    return -(_unit(p) * _unit(z.detach())).sum(1).mean()


def simsiam_no_stop_gradient(p1, p2, z1, z2):
    return -(_unit(p1) * _unit(z2)).sum(1).mean() / 2 - (_unit(p2) * _unit(z1)).sum(1).mean() / 2


def simsiam_same_view(p1, p2, z1, z2):
    return _d(p1, z1) / 2 + _d(p2, z2) / 2


def simsiam_byol_form(p1, p2, z1, z2):
    return (byol_one_minus(p1, z2) + byol_one_minus(p2, z1))  # 2 - 2 cos, halved


def simsiam_positive(p1, p2, z1, z2):
    return -_d(p1, z2) / 2 - _d(p2, z1) / 2


def simsiam_halves_added(p1, p2, z1, z2):
    return _d(p1, z2) + _d(p2, z1)


def simsiam_batch_summed(p1, p2, z1, z2):
    def d(p, z):
        return -(_unit(p) * _unit(z.detach())).sum()
    return d(p1, z2) / 2 + d(p2, z1) / 2


def simsiam_stop_on_predictions(p1, p2, z1, z2):
    return -(_unit(p1.detach()) * _unit(z2)).sum(1).mean() / 2 - (
        _unit(p2.detach()) * _unit(z1)).sum(1).mean() / 2


def simsiam_not_normalised(p1, p2, z1, z2):
    return -(p1 * z2.detach()).sum(1).mean() / 2 - (p2 * z1.detach()).sum(1).mean() / 2


def simsiam_in_place(p1, p2, z1, z2):
    z1, z2 = z1.detach(), z2.detach()
    return _d(p1.div_(p1.norm(dim=1, keepdim=True)), z2) / 2 + _d(p2, z1) / 2


def simsiam_float32(p1, p2, z1, z2):
    return _d(p1.float(), z2.float()) / 2 + _d(p2.float(), z1.float()) / 2

_B, _S = "byol_loss", "simsiam_loss"
CATALOGUE = [
    Botch("no stop-gradient", _B, byol_no_stop_gradient, "z is not detached"),
    Botch("not normalised", _B, byol_not_normalised, "not L2-normalised"),
    Botch("negative cosine", _B, byol_negative_cosine, "negative cosine similarity"),
    Botch("1 - cos", _B, byol_one_minus, "1 - cos"),
    Botch("summed over the batch", _B, byol_summed, "summed instead of averaged"),
    Botch("mse per dimension", _B, byol_mse_per_dimension, "averaged over the dimensions"),
    Botch("normalised along the batch", _B, byol_wrong_axis, "not L2-normalised"),
    Botch("normalised in place", _B, byol_in_place, "in-place"),
    Botch("through float32", _B, byol_float32, "float32"),
    Botch("no stop-gradient", _S, simsiam_no_stop_gradient, "z is not detached"),
    Botch("same view", _S, simsiam_same_view, "own view's projection"),
    Botch("BYOL's form", _S, simsiam_byol_form, "2 - 2 cos"),
    Botch("cosine not negated", _S, simsiam_positive, "not negated"),
    Botch("halves added", _S, simsiam_halves_added, "added instead of halved"),
    Botch("summed over the batch", _S, simsiam_batch_summed, "summed over the batch"),
    Botch("stop-gradient on the predictions", _S, simsiam_stop_on_predictions,
          "on the predictions instead"),
    Botch("not normalised", _S, simsiam_not_normalised, "not L2-normalised"),
    Botch("normalised in place", _S, simsiam_in_place, "in-place"),
    Botch("through float32", _S, simsiam_float32, "float32"),
]
