"""Classic mistakes in KeyQueue and moco_loss, each with words its diagnosis must contain."""

from collections import deque

import torch
import torch.nn.functional as F

from tests.botches import Botch


class _Queue:
    """A correct queue to botch one method at a time: a write position modulo the size."""

    def __init__(self, size, dim, generator=None):
        self.keys = F.normalize(torch.randn(size, dim, generator=generator), dim=1)
        self.size, self.position = size, 0

    def enqueue(self, keys):
        keys = keys.detach()[-self.size:]
        rows = (self.position + torch.arange(len(keys))) % self.size
        self.keys[rows] = keys
        self.position = (self.position + len(keys)) % self.size


class GlobalGenerator(_Queue):
    def __init__(self, size, dim, generator=None):
        super().__init__(size, dim, generator)
        self.keys = F.normalize(torch.randn(size, dim), dim=1)


class RawGaussianStart(_Queue):
    def __init__(self, size, dim, generator=None):
        super().__init__(size, dim, generator)
        self.keys = torch.randn(size, dim, generator=generator)


class PositionNeverMoves(_Queue):
    def enqueue(self, keys):
        keys = keys.detach()[-self.size:]
        self.keys[:len(keys)] = keys


class CutAtTheEnd(_Queue):
    # The reference implementation asserts that the batch divides the size; without the
    # assertion the slice silently drops what does not fit.
    def enqueue(self, keys):
        keys = keys.detach()[-self.size:]
        end = min(self.position + len(keys), self.size)
        self.keys[self.position:end] = keys[:end - self.position]
        self.position = end % self.size


class FirstRowsOfLargeBatch(_Queue):
    def enqueue(self, keys):
        super().enqueue(keys.detach()[:self.size])


class KeepsHistory(_Queue):
    def enqueue(self, keys):
        self.keys = torch.cat([self.keys, keys])[-self.size:]


class KeepsViews:
    def __init__(self, size, dim, generator=None):
        start = F.normalize(torch.randn(size, dim, generator=generator), dim=1)
        self.rows = deque(start.unbind(0), maxlen=size)

    def enqueue(self, keys):
        self.rows.extend(keys.detach().unbind(0))  # views into the caller's tensor

    @property
    def keys(self):
        return torch.stack(list(self.rows))


class NormalisesAgain(_Queue):
    def enqueue(self, keys):
        super().enqueue(F.normalize(keys, dim=1))


def _logits(q, k, queue_keys, temperature):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    return torch.cat([(q * k).sum(1, keepdim=True), q @ queue_keys.T], dim=1) / temperature


def _zeros(n):
    return torch.zeros(n, dtype=torch.long)


def q_not_normalised(q, k, queue_keys, temperature=0.07):
    k = F.normalize(k, dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue_keys.T], dim=1) / temperature
    return F.cross_entropy(logits, _zeros(len(q)))


def nothing_normalised(q, k, queue_keys, temperature=0.07):
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue_keys.T], dim=1) / temperature
    return F.cross_entropy(logits, _zeros(len(q)))


def target_is_the_row(q, k, queue_keys, temperature=0.07):
    return F.cross_entropy(_logits(q, k, queue_keys, temperature), torch.arange(len(q)))


def temperature_multiplied(q, k, queue_keys, temperature=0.07):
    return F.cross_entropy(_logits(q, k, queue_keys, 1 / temperature), _zeros(len(q)))


def temperature_ignored(q, k, queue_keys, temperature=0.07):
    return F.cross_entropy(_logits(q, k, queue_keys, 1.0), _zeros(len(q)))


def temperature_on_the_queue_only(q, k, queue_keys, temperature=0.07):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue_keys.T / temperature], dim=1)
    return F.cross_entropy(logits, _zeros(len(q)))


def summed(q, k, queue_keys, temperature=0.07):
    return F.cross_entropy(_logits(q, k, queue_keys, temperature), _zeros(len(q)),
                           reduction="sum")


def keys_enqueued_first(q, k, queue_keys, temperature=0.07):
    both = torch.cat([queue_keys, F.normalize(k, dim=1)])  # the batch joins the queue too soon
    return F.cross_entropy(_logits(q, k, both, temperature), _zeros(len(q)))


def batch_keys_as_negatives(q, k, queue_keys, temperature=0.07):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = torch.cat([q @ k.T, q @ queue_keys.T], dim=1) / temperature
    return F.cross_entropy(logits, torch.arange(len(q)))


def queue_forgotten(q, k, queue_keys, temperature=0.07):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    return F.cross_entropy(q @ k.T / temperature, torch.arange(len(q)))


def softmax_by_hand(q, k, queue_keys, temperature=0.07):
    e = _logits(q, k, queue_keys, temperature).exp()
    return -(e[:, 0] / e.sum(1)).log().mean()


def queries_detached(q, k, queue_keys, temperature=0.07):
    return F.cross_entropy(_logits(q.detach(), k, queue_keys, temperature), _zeros(len(q)))


def normalised_in_place(q, k, queue_keys, temperature=0.07):
    q = q.div_(q.norm(dim=1, keepdim=True))
    return F.cross_entropy(_logits(q, k, queue_keys, temperature), _zeros(len(q)))


def through_float32(q, k, queue_keys, temperature=0.07):
    return F.cross_entropy(_logits(q.float(), k.float(), queue_keys.float(), temperature),
                           _zeros(len(q)))


def default_of_ten_percent(q, k, queue_keys, temperature=0.1):
    return F.cross_entropy(_logits(q, k, queue_keys, temperature), _zeros(len(q)))


_Q = "KeyQueue"
_L = "moco_loss"
CATALOGUE = [
    Botch("global generator", _Q, GlobalGenerator, "global generator"),
    Botch("raw Gaussian start", _Q, RawGaussianStart, "not unit vectors"),
    Botch("write position never moves", _Q, PositionNeverMoves, "write position does not move"),
    Botch("batch cut at the end", _Q, CutAtTheEnd, "instead of wrapping around"),
    Botch("first rows of a large batch", _Q, FirstRowsOfLargeBatch, "keeps its first"),
    Botch("keeps autograd history", _Q, KeepsHistory, "autograd history"),
    Botch("keeps views", _Q, KeepsViews, "views of the caller's tensor"),
    Botch("normalises again", _Q, NormalisesAgain, "normalises them again"),
    Botch("q not normalised", _L, q_not_normalised, "the queries is not L2-normalised"),
    Botch("nothing normalised", _L, nothing_normalised, "the queries and the keys are not"),
    Botch("target is the row", _L, target_is_the_row, "target is not the positive"),
    Botch("temperature multiplied", _L, temperature_multiplied, "multiplied by the temperature"),
    Botch("temperature ignored", _L, temperature_ignored, "temperature argument is ignored"),
    Botch("temperature on the queue only", _L, temperature_on_the_queue_only,
          "only the queue's similarities"),
    Botch("summed", _L, summed, "summed instead of averaged"),
    Botch("keys enqueued first", _L, keys_enqueued_first, "also among the negatives"),
    Botch("batch keys as negatives", _L, batch_keys_as_negatives, "other queries' keys"),
    Botch("queue forgotten", _L, queue_forgotten, "the queue is not used"),
    Botch("softmax by hand", _L, softmax_by_hand, "overflows"),
    Botch("queries detached", _L, queries_detached, "the gradient is cut"),
    Botch("normalised in place", _L, normalised_in_place, "in-place"),
    Botch("through float32", _L, through_float32, "float32"),
    Botch("default of 0.1", _L, default_of_ten_percent, "default temperature"),
]
