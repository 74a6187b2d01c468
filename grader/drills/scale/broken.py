"""Distributed CLIP losses that are wrong on purpose, for drill 09's break-it cell.

Each has `distributed_clip_loss`'s signature and one classic red flag built in, so that the demo
can run it in real gloo processes next to the learner's own loss and show what the mistake
costs: a value that is still right with a gradient that is not, or a value that is off. None of
them is a check or registered with the grader; the drill's `__init__` does not import this
module.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _gathered(t):
    """The ranks' rows in rank order, this rank's own rows kept as they are (with their graph),
    the others copied in by dist.all_gather, with no graph: a gather with no backward pass."""
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.detach().contiguous())
    parts[dist.get_rank()] = t
    return torch.cat(parts)


def _local_rows(image, text, logit_scale, first):
    targets = torch.arange(first, first + len(image), device=image.device)
    image_to_text = F.cross_entropy(logit_scale * image @ _gathered(text).T, targets)
    text_to_image = F.cross_entropy(logit_scale * text @ _gathered(image).T, targets)
    return (image_to_text + text_to_image) / 2


def gather_without_gradient(image_emb, text_emb, logit_scale):
    """The right rows and targets, but the other ranks' embeddings arrive with no gradient: no
    rank's loss sends anything back to the rank the rows came from."""
    image, text = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    return _local_rows(image, text, logit_scale, dist.get_rank() * len(image))


def targets_not_offset(image_emb, text_emb, logit_scale):
    """Every rank takes targets 0..n-1, the first rank's columns, whatever its rank."""
    image, text = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    return _local_rows(image, text, logit_scale, 0)
