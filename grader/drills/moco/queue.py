"""Checks for `KeyQueue(size, dim, generator=None)` (drill 05): MoCo's dictionary of negatives.

A fixed-size first-in-first-out store: `.keys` is `(size, dim)`, filled at the start with random
unit vectors drawn from `generator` (never torch's global generator); `enqueue(keys)` stores
detached copies of a `(B, dim)` batch as given, replacing the oldest keys first, wrapping around
when B does not divide `size`, and keeping only the last `size` rows of a batch larger than the
queue. The row order of `.keys` is not part of the contract, so the checks compare contents:
each stored row is matched to the batch row it equals.
"""

from __future__ import annotations

import torch

from ...checks import checklist
from ...inputs import gen
from ...inputs import randn as _randn
from ...sandbox import Fail, call
from ._common import DRILL

queue_checks = checklist(
    "KeyQueue",
    drill=DRILL,
    kind="class",
    smoke=lambda cls: cls(4, 2, generator=torch.Generator().manual_seed(0)).keys,
)

GLOBAL_RNG = ("the initial keys are drawn from torch's global generator, not from the "
              "`generator` argument")
NOT_UNIT = "the initial keys are not unit vectors: the loss compares unit queries with them"
POINTER_STUCK = ("the write position does not move: every batch overwrites the same rows, so "
                 "the older keys are never replaced")
NO_WRAP = ("a batch that reaches the end of the queue is cut short instead of wrapping around "
           "to the start: part of it is never stored")
FIRST_ROWS = ("a batch larger than the queue keeps its first `size` rows; the newest keys are "
              "its last rows")
HISTORY = ("the stored keys keep autograd history: the queue must hold detached copies, or "
           "every step's graph stays alive through it")
SHARED = ("the queue keeps views of the caller's tensor, not copies: changing the batch "
          "afterwards changes the stored keys")
RENORMALISED = ("enqueue changes the keys it is given (normalises them again): the caller "
                "normalises them, the queue stores them as given")
NOT_STORED = "enqueue does not store the batch in `.keys`"

_FIFO_HINT = ("keep a write position that advances by the batch size, modulo the queue's size, "
              "so the next batch replaces the oldest keys")


def _unit(rows, dim, seed):
    x = _randn(rows, dim, seed=seed)
    return x / x.norm(dim=1, keepdim=True)


def _build(cls, size, dim, seed=0):
    return call(cls, size, dim, generator=gen(seed))


def _keys(queue, size=None, dim=None) -> torch.Tensor:
    keys = call(lambda: queue.keys)
    if not isinstance(keys, torch.Tensor):
        raise Fail(f"`.keys` is a {type(keys).__name__}, not a tensor",
                   diagnosis="`.keys` is not a tensor of shape (size, dim)",
                   hint="keep the stored keys in one tensor of shape (size, dim)")
    if size is not None and tuple(keys.shape) != (size, dim):
        raise Fail(f"`.keys` has shape {tuple(keys.shape)} for KeyQueue({size}, {dim})",
                   diagnosis="`.keys` is not a tensor of shape (size, dim)",
                   hint="the queue always holds exactly `size` keys of `dim` numbers",
                   measured=tuple(keys.shape), expected=(size, dim))
    return keys


def _which(keys, batch) -> list[int]:
    """For each stored row, the index of the row of `batch` it equals (-1: none of them)."""
    found = []
    for row in keys:
        hits = ((batch - row).abs().amax(dim=1) < 1e-6).nonzero().flatten()
        found.append(int(hits[0]) if len(hits) else -1)
    return found


def _stream_check(cls, size, dim, batches, seed):
    """Enqueue `batches` (sizes) of fresh unit rows; return the stored stream indices and the
    stream (all rows, in order)."""
    queue = _build(cls, size, dim)
    stream = _unit(sum(batches), dim, seed)
    start = 0
    for b in batches:
        call(queue.enqueue, stream[start:start + b].clone())
        start += b
    return sorted(i for i in _which(_keys(queue, size, dim), stream) if i >= 0), stream


def _fifo_mistake(got, want, batches, size) -> str | None:
    """Name the classic mistake a set of stored indices shows, if any."""
    if not got:
        return NOT_STORED
    total = sum(batches)
    last = list(range(total - batches[-1], total))
    if got == last or (set(last) <= set(got) and len(got) < min(size, total)):
        return POINTER_STUCK
    if set(got) < set(range(total)) and max(got) < total - 1:
        return NO_WRAP
    return None


@queue_checks.add(
    "starts as a (size, dim) tensor of unit vectors with no autograd history",
    diagnosis="the initial queue is not `size` unit vectors of `dim` numbers",
    hint="draw `size` random vectors of `dim` numbers and divide each by its length",
    rng_allowed=True,
)
def starts_unit(cls):
    keys = _keys(_build(cls, 10, 6), 10, 6)
    if keys.requires_grad or keys.grad_fn is not None:
        raise Fail("the initial `.keys` requires grad", diagnosis=HISTORY,
                   hint="create the keys as a plain tensor: no optimizer ever updates them")
    norms = keys.norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-5):
        raise Fail(f"row lengths range from {norms.min().item():.3g} to {norms.max().item():.3g}",
                   diagnosis=NOT_UNIT, measured=f"{norms.min().item():.3g}..."
                   f"{norms.max().item():.3g}", expected="1 for every row")
    if (keys - keys[:1]).abs().amax() < 1e-6:
        raise Fail("every initial key is the same vector",
                   diagnosis="the initial keys are not random: every row is the same",
                   hint="draw each row at random, from the generator")
    return "10 unit rows of 6 numbers"


@queue_checks.add(
    "draws its initial keys from `generator` and never from the global generator",
    diagnosis=GLOBAL_RNG,
    hint="hand the `generator` argument to the random draw that fills the queue",
    rng_allowed=True,  # the check watches the global generator itself, to name the mistake
)
def uses_generator(cls):
    state = torch.get_rng_state()
    a = _keys(_build(cls, 8, 4, seed=3), 8, 4).clone()
    moved = not torch.equal(state, torch.get_rng_state())
    b = _keys(_build(cls, 8, 4, seed=3), 8, 4)
    c = _keys(_build(cls, 8, 4, seed=4), 8, 4)
    if moved or not torch.equal(a, b):
        raise Fail("building the queue " + ("moved torch's global generator" if moved else
                                            "twice with the same generator seed gave different "
                                            "keys"),
                   measured="the global generator moved" if moved else "different keys",
                   expected="the same keys from the same seed, the global generator untouched")
    if torch.equal(a, c):
        raise Fail("two generator seeds gave the same initial keys",
                   diagnosis="the initial keys ignore the generator (seeded or fixed inside)",
                   hint="draw the initial keys from the generator you are given",
                   measured="identical keys", expected="different keys")
    return "same seed, same keys; the global generator untouched"


@queue_checks.add(
    "enqueue replaces the oldest keys first, wrapping around",
    diagnosis="enqueue does not behave as a first-in-first-out queue",
    hint=_FIFO_HINT,
    rng_allowed=True,  # only uses_generator is about the global generator: one diagnosis
)
def first_in_first_out(cls):
    for size, batches in ((6, (4, 4)), (7, (3, 3, 3, 3, 3))):
        got, _ = _stream_check(cls, size, 4, batches, seed=80 + size)
        total = sum(batches)
        want = list(range(total - size, total))
        if got != want:
            mistake = _fifo_mistake(got, want, batches, size)
            raise Fail(f"KeyQueue({size}, 4) after batches of {', '.join(map(str, batches))} "
                       f"holds batch rows {got}", diagnosis=mistake,
                       hint=_FIFO_HINT if mistake in (None, POINTER_STUCK, NO_WRAP) else None,
                       measured=got, expected=f"the last {size}: {want}")
    return "after 4 + 4 rows a queue of 6 holds the last 6; 5 x 3 into 7 the last 7"


@queue_checks.add(
    "a batch of `size` rows or more leaves exactly its last `size` rows",
    diagnosis="a batch at least as large as the queue is not stored as its last `size` rows",
    hint="when the batch has more rows than the queue, only its newest `size` rows can stay",
    crash_means_mistake=True,
    rng_allowed=True,
)
def large_batch(cls):
    for size, rows in ((5, 5), (5, 8)):
        got, _ = _stream_check(cls, size, 3, (2, rows), seed=90 + rows)
        total = 2 + rows
        want = list(range(total - size, total))
        if got != want:
            first = list(range(2, 2 + size))
            mistake = (FIRST_ROWS if got == first and rows > size
                       else _fifo_mistake(got, want, (2, rows), size))
            raise Fail(f"KeyQueue({size}, 3) after batches of 2 and {rows} holds rows {got}",
                       diagnosis=mistake,
                       measured=got, expected=want)
    return "5 rows replace all 5 keys; 8 rows leave their last 5"


@queue_checks.add(
    "stores detached copies, not views of the caller's tensor",
    diagnosis=HISTORY,
    hint="store a copy of the batch with no autograd history: cutting the history alone "
    "still shares memory with the caller's tensor",
    rng_allowed=True,
)
def stores_copies(cls):
    queue = _build(cls, 6, 4)
    leaf = _unit(3, 4, seed=95).requires_grad_(True)
    batch = leaf * 1.0  # a non-leaf, as an encoder's output would be
    call(queue.enqueue, batch)
    keys = _keys(queue, 6, 4)
    if keys.requires_grad or keys.grad_fn is not None:
        raise Fail("after enqueue of a batch with autograd history, `.keys` requires grad",
                   measured="requires_grad=True", expected="no autograd history")
    plain = _unit(3, 4, seed=96)
    call(queue.enqueue, plain)
    before = _keys(queue, 6, 4).clone()
    plain.mul_(-1.0)  # the caller reuses its buffer
    if not torch.equal(before, _keys(queue, 6, 4)):
        raise Fail("changing the batch after enqueue changed the stored keys", diagnosis=SHARED,
                   hint="copy the rows into the queue's own tensor: writing them into its rows "
                   "by index copies them")
    return "detached copies"


@queue_checks.add(
    "stores the keys as given",
    diagnosis=RENORMALISED,
    hint="write the rows into the queue unchanged",
    rng_allowed=True,
)
def as_given(cls):
    queue = _build(cls, 4, 3)
    batch = 3.0 * _randn(2, 3, seed=97)
    call(queue.enqueue, batch)
    keys = _keys(queue, 4, 3)
    if not any(((batch[0] - row).abs().amax() < 1e-6) for row in keys):
        lengths = batch.norm(dim=1)
        scaled = any(((batch[0] / lengths[0] - row).abs().amax() < 1e-5) for row in keys)
        raise Fail("a batch of rows of length about 3 is not found in `.keys`",
                   diagnosis=RENORMALISED if scaled else NOT_STORED,
                   measured="rescaled rows" if scaled else "not stored",
                   expected="the rows exactly as given")
    return "rows of length 3 stored as they are"
