"""Classic mistakes in chunked_nt_xent_loss, gather_with_grad and distributed_clip_loss, each with
words its diagnosis must contain.

The chunked botches share one chunked loss (`_chunked`) with exactly one flaw switched on; a
flaw in how a chunk's rows are handled is made in the forward and the backward pass alike, as
a learner's helper would make it in both, so that the backward pass stays the derivative of
the forward pass and only the named mistake shows.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F

from tests.botches import Botch


def _starts(m, chunk, flaw):
    return range(0, m - chunk + 1 if flaw == "drop last" else m, chunk)


def _chunk_rows(m, chunk, flaw):
    for start in _starts(m, chunk, flaw):
        rows = torch.arange(start, min(start + chunk, m))
        if len(rows):
            yield start, rows


def _targets(rows, start, m, flaw):
    local = rows - start if flaw == "target offset" else rows
    return (local + m // 2) % m


def _logits(z, rows, start, tau, flaw):
    scale = tau if flaw == "temperature multiplied" else 1 / tau
    logits = z[rows] @ z.T * scale
    if flaw != "no mask":
        masked = rows - start if flaw == "mask offset" else rows
        logits = logits.index_put((torch.arange(len(rows)), masked),
                                  torch.tensor(float("-inf"), dtype=z.dtype))
    return logits, scale


def _weights(m, chunk, flaw, dtype):
    """Each row's weight in the loss."""
    w = torch.zeros(m, dtype=dtype)
    chunks = list(_chunk_rows(m, chunk, flaw))
    kept = sum(len(r) for _, r in chunks)
    for _, rows in chunks:
        w[rows] = 1 / (len(rows) * len(chunks)) if flaw == "mean of means" else 1 / kept
    return w


def _chunked(flaw=None):
    class Chunked(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, tau, chunk):
            zu = F.normalize(z, dim=1) if flaw == "no normalisation jacobian" else z
            m = len(zu)
            w = _weights(m, chunk, flaw, zu.dtype)
            total = torch.zeros((), dtype=zu.dtype)
            for start, rows in _chunk_rows(m, chunk, flaw):
                logits, scale = _logits(zu, rows, start, tau, flaw)
                if flaw == "exp by hand":
                    lse = logits.exp().sum(1).log()
                else:
                    lse = torch.logsumexp(logits, dim=1)
                positive = logits[torch.arange(len(rows)), _targets(rows, start, m, flaw)]
                total = total + (w[rows] * (lse - positive)).sum()
            ctx.save_for_backward(zu)
            ctx.tau, ctx.chunk = tau, chunk
            return total

        @staticmethod
        def backward(ctx, grad_out):
            (z,) = ctx.saved_tensors
            m, tau, chunk = len(z), ctx.tau, ctx.chunk
            w = _weights(m, chunk, flaw, z.dtype)
            grad = torch.zeros_like(z)
            for start, rows in _chunk_rows(m, chunk, flaw):
                logits, scale = _logits(z, rows, start, tau, flaw)
                d = torch.softmax(logits, dim=1)
                d[torch.arange(len(rows)), _targets(rows, start, m, flaw)] -= 1
                d = d * w[rows, None] * scale
                grad[rows] += d @ z
                if flaw != "one-sided backward":
                    grad += d.T @ z[rows]
            if flaw != "grad_output ignored":
                grad = grad * grad_out
            return grad, None, None

    def chunked_nt_xent_loss(z1, z2, temperature=0.5, chunk_size=1024):
        if flaw == "normalised in place":
            z1 = z1.div_(z1.norm(dim=1, keepdim=True))
        z = torch.cat([z1, z2])
        if flaw == "through float32":
            z = z.float()
        if flaw != "no normalisation jacobian":
            z = F.normalize(z, dim=1)
        if flaw == "detached":
            z = z.detach()
        if flaw == "chunk_size ignored":
            chunk_size = len(z)
        return Chunked.apply(z, temperature, chunk_size)

    return chunked_nt_xent_loss


def full_matrix(z1, z2, temperature=0.5, chunk_size=1024):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(z)).roll(len(z1)))


def autograd_through_chunks(z1, z2, temperature=0.5, chunk_size=1024):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    m = len(z)
    losses = []
    for start in range(0, m, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, m))
        logits = (z[rows] @ z.T / temperature).index_put(
            (torch.arange(len(rows)), rows), torch.tensor(float("-inf"), dtype=z.dtype))
        losses.append(F.cross_entropy(logits, (rows + m // 2) % m, reduction="sum"))
    return torch.stack(losses).sum() / m


# -- gather_with_grad --------------------------------------------------------------------------


def _parts(t):
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return parts


def _gather_function(backward):
    class Gather(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return torch.cat(_parts(t))

        @staticmethod
        def backward(ctx, grad):
            return backward(grad.contiguous().clone())

    def gather_with_grad(t):
        if not dist.is_initialized():
            return t
        return Gather.apply(t)

    gather_with_grad.function = Gather
    return gather_with_grad


def _slice(grad, rank):
    n = len(grad) // dist.get_world_size()
    return grad[rank * n:(rank + 1) * n]


def _summed(grad):
    dist.all_reduce(grad)
    return _slice(grad, dist.get_rank())


_gather = _gather_function(_summed)


def _averaged(grad):
    dist.all_reduce(grad)
    return _slice(grad, dist.get_rank()) / dist.get_world_size()


def _next_rank(grad):
    dist.all_reduce(grad)
    return _slice(grad, (dist.get_rank() + 1) % dist.get_world_size())


def _slice_then_reduce(grad):
    mine = _slice(grad, dist.get_rank()).clone()
    dist.all_reduce(mine)
    return mine


def _whole(grad):
    dist.all_reduce(grad)
    return grad


def _own_only(grad):
    return _slice(grad, dist.get_rank())


def plain_all_gather(t):
    if not dist.is_initialized():
        return t
    return torch.cat(_parts(t))


def own_slot_replaced(t):
    if not dist.is_initialized():
        return t
    parts = _parts(t)
    parts[dist.get_rank()] = t
    return torch.cat(parts)


def _flawed_gather(forward, position):
    """A gather whose forward pass arranges the parts its own way (`forward(parts)`) and whose
    backward pass, consistently, reduces and takes back rows `position(rank, world, n)`."""

    class Gather(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return forward(_parts(t))

        @staticmethod
        def backward(ctx, grad):
            grad = grad.contiguous().clone()
            dist.all_reduce(grad)
            world, rank = dist.get_world_size(), dist.get_rank()
            return grad[position(rank, world, len(grad) // world if grad.dim() == 2 else 1)]

    return Gather.apply


_stack = _flawed_gather(torch.stack, lambda rank, world, n: rank)
_reverse = _flawed_gather(lambda parts: torch.cat(parts[::-1]),
                          lambda rank, world, n: slice((world - 1 - rank) * n,
                                                       (world - rank) * n))


def stacked(t):
    return _stack(t) if dist.is_initialized() else t


def reversed_order(t):
    return _reverse(t) if dist.is_initialized() else t


def no_group_check(t):
    return _gather.function.apply(t)


# -- distributed_clip_loss -------------------------------------------------------------------



def _rank():
    return dist.get_rank() if dist.is_initialized() else 0


def _world():
    return dist.get_world_size() if dist.is_initialized() else 1


def _local_rows(image_emb, text_emb, logit_scale, gather=_gather, offset=True):
    image, text = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    all_image, all_text = gather(image), gather(text)
    first = _rank() * len(image) if offset else 0
    targets = torch.arange(first, first + len(image))
    return (F.cross_entropy(logit_scale * image @ all_text.T, targets)
            + F.cross_entropy(logit_scale * text @ all_image.T, targets)) / 2


def local_only(image_emb, text_emb, logit_scale):
    return _local_rows(image_emb, text_emb, logit_scale, gather=lambda t: t, offset=False)


def labels_not_offset(image_emb, text_emb, logit_scale):
    return _local_rows(image_emb, text_emb, logit_scale, offset=False)


def global_on_every_rank(image_emb, text_emb, logit_scale):
    image, text = _gather(F.normalize(image_emb, dim=-1)), _gather(F.normalize(text_emb, dim=-1))
    logits = logit_scale * image @ text.T
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def gathered_without_grad(image_emb, text_emb, logit_scale):
    return _local_rows(image_emb, text_emb, logit_scale, gather=plain_all_gather)


def gather_not_reduced(image_emb, text_emb, logit_scale):
    return _local_rows(image_emb, text_emb, logit_scale, gather=_gather_function(_own_only))


def divided_by_world_size(image_emb, text_emb, logit_scale):
    return _local_rows(image_emb, text_emb, logit_scale) / _world()


def multiplied_by_world_size(image_emb, text_emb, logit_scale):
    return _local_rows(image_emb, text_emb, logit_scale) * _world()


_C, _G, _L = "chunked_nt_xent_loss", "gather_with_grad", "distributed_clip_loss"
CATALOGUE = [
    Botch("full matrix", _C, full_matrix, "full 2N x 2N similarity matrix is built"),
    Botch("chunk_size ignored", _C, _chunked("chunk_size ignored"), "full 2N x 2N similarity"),
    Botch("autograd through the chunks", _C, autograd_through_chunks,
          "kept for the backward pass"),
    Botch("target offset", _C, _chunked("target offset"), "targets inside a chunk ignore"),
    Botch("mask offset", _C, _chunked("mask offset"), "self-similarity mask inside a chunk"),
    Botch("mean of chunk means", _C, _chunked("mean of means"), "chunks' means are averaged"),
    Botch("last chunk dropped", _C, _chunked("drop last"), "last, shorter chunk is dropped"),
    Botch("no normalisation jacobian", _C, _chunked("no normalisation jacobian"),
          "forgets the L2 normalisation's own derivative"),
    Botch("one-sided backward", _C, _chunked("one-sided backward"),
          "not the derivative of the forward pass"),
    Botch("grad_output ignored", _C, _chunked("grad_output ignored"), "ignores the incoming"),
    Botch("exp by hand", _C, _chunked("exp by hand"), "overflows"),
    Botch("no mask", _C, _chunked("no mask"), "diagonal is not masked"),
    Botch("temperature multiplied", _C, _chunked("temperature multiplied"),
          "multiplied by the temperature"),
    Botch("through float32", _C, _chunked("through float32"), "float32"),
    Botch("normalised in place", _C, _chunked("normalised in place"), "in-place"),
    Botch("detached", _C, _chunked("detached"), "the gradient is cut"),
    Botch("plain all_gather", _G, plain_all_gather, "no gradient history"),
    Botch("own slot replaced", _G, own_slot_replaced, "never reach this rank"),
    Botch("gradient averaged", _G, _gather_function(_averaged), "averaged over the ranks"),
    Botch("next rank's slice", _G, _gather_function(_next_rank), "another rank's slice"),
    Botch("slice reduced", _G, _gather_function(_slice_then_reduce), "reduces its own slice"),
    Botch("whole gradient returned", _G, _gather_function(_whole), "whole gathered tensor"),
    Botch("stacked", _G, stacked, "stacked into a new dimension"),
    Botch("reversed order", _G, reversed_order, "not in rank order"),
    Botch("no group check", _G, no_group_check, "calls the collectives anyway"),
    Botch("local only", _L, local_only, "other ranks' embeddings are not gathered"),
    Botch("labels not offset", _L, labels_not_offset, "not offset by the rank"),
    Botch("global loss on every rank", _L, global_on_every_rank, "whole global batch"),
    Botch("gathered without grad", _L, gathered_without_grad, "never reach this rank"),
    Botch("gather not reduced", _L, gather_not_reduced, "never reach this rank"),
    Botch("divided by world size", _L, divided_by_world_size, "divided by the world size"),
    Botch("multiplied by world size", _L, multiplied_by_world_size,
          "multiplied by the world size"),
]
