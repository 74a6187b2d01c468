"""What a loss holds in memory, measured in bytes, not in seconds: for the chunked loss's checks.

- `Footprint`, a torch dispatch mode: every tensor an operation creates while it is on is
  counted until it is freed (storages, so that views are counted once), which gives the peak
  of memory created in the forward and backward passes and the largest single tensor.
- `saved_bytes(run)`: the bytes autograd keeps for the backward pass of `run()`'s result, as
  torch.autograd.graph.saved_tensors_hooks sees them (what `save_for_backward` and torch's own
  operations save), plus any tensor a custom Function's backward node holds as an attribute
  (`ctx.something = tensor` escapes the hooks).
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _storage(t):
    try:
        st = t.untyped_storage()
        return st.data_ptr(), st.nbytes()
    except (RuntimeError, NotImplementedError):
        return None


class Footprint(TorchDispatchMode):
    """Live bytes of the tensors created under the mode: `peak` and `largest` (bytes)."""

    def __init__(self):
        super().__init__()
        self.live, self.refs = {}, {}
        self.current = self.peak = self.largest = 0

    def _release(self, key):
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.current -= self.live.pop(key)
            del self.refs[key]

    def _track(self, t):
        found = _storage(t)
        if found is None:
            return
        key, nbytes = found
        if key not in self.live:
            self.live[key], self.refs[key] = nbytes, 0
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            self.largest = max(self.largest, nbytes)
        self.refs[key] += 1
        weakref.finalize(t, self._release, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        known = {id(a) for a in tree_flatten((args, kwargs or {}))[0]
                 if isinstance(a, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and id(t) not in known:
                self._track(t)
        return out


def _tensors_in(value, depth=0):
    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 3 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors_in(item, depth + 1)
    elif depth < 3 and isinstance(value, dict):
        for item in value.values():
            yield from _tensors_in(item, depth + 1)


def _held_by_nodes(out) -> list:
    """Tensors kept as attributes of the backward graph's Python nodes (custom Functions)."""
    held, seen, todo = [], set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        held += list(_tensors_in(list(getattr(node, "__dict__", {}).values())))
        todo += [n for n, _ in getattr(node, "next_functions", ())]
    return held


def saved_bytes(run):
    """(run()'s result, bytes kept for its backward pass), each storage counted once."""
    storages = {}

    def pack(t):
        found = _storage(t)
        if found is not None:
            storages[found[0]] = found[1]
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    if isinstance(out, torch.Tensor) and out.grad_fn is not None:
        for t in _held_by_nodes(out):
            found = _storage(t)
            if found is not None:
                storages[found[0]] = found[1]
    return out, sum(storages.values())
