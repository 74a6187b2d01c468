"""BYOL and SimSiam losses that are wrong on purpose, for drill 06's break-it cell: each makes one
classic slip, so that the demo can show what the slip costs. They are not checks and the drill's
package does not import them; the notebook does."""

import torch.nn.functional as F


def simsiam_no_stop_gradient(p1, p2, z1, z2):
    """SimSiam's loss with the gradient flowing into the projections too."""
    return -(F.cosine_similarity(p1, z2, dim=1).mean()
             + F.cosine_similarity(p2, z1, dim=1).mean()) / 2


def simsiam_same_view(p1, p2, z1, z2):
    """Each prediction compared with its own view's projection instead of the other view's."""
    return -(F.cosine_similarity(p1, z1.detach(), dim=1).mean()
             + F.cosine_similarity(p2, z2.detach(), dim=1).mean()) / 2
