"""What the drill-06 check modules share: the drill's name, the way the learner is called, and
the inputs with a closed form."""

from __future__ import annotations

import torch

from ...kit.mistakes import call_naming_in_place as call  # noqa: F401  (the drill's modules use it)
from ...kit.mistakes import loss_of as value_of

DRILL = "06_byol_simsiam"

TARGET_GETS_GRADIENT = ("z is not detached: the gradient reaches z, which must stay a constant "
                        "for this loss")
NOT_NORMALISED = ("the vectors are not L2-normalised, so the loss compares dot products or "
                  "distances, not directions")


def changed_by_rescaling(fn, args, names):
    """The loss of `args`, and the names of the inputs whose rows, rescaled one by one by factors
    from 0.2 to 5, change it (a cosine similarity ignores every row's length)."""
    base = value_of(fn, *args).item()
    factors = torch.linspace(0.2, 5.0, len(args[0])).unsqueeze(1)
    changed = []
    for i, name in enumerate(names):
        scaled = list(args)
        scaled[i] = factors * scaled[i]
        if abs(value_of(fn, *scaled).item() - base) > 1e-4 * max(1.0, abs(base)) + 1e-5:
            changed.append(name)
    return base, changed


def aligned(n=4, d=6):
    """Unit rows, one-hot: the prediction and its target equal."""
    e = torch.eye(n, d)
    return e, e.clone()


def opposite(n=4, d=6):
    e = torch.eye(n, d)
    return e, -e


def orthogonal(n=4, d=8):
    eye = torch.eye(2 * n, d)
    return eye[:n], eye[n:2 * n]
