"""A network's tensors before and after learner code ran: a snapshot of them, and the names of
those that changed since. The SimCLR checks use it to see which parts training moved, the DINO
checks to see what an EMA update wrote into the student, the teacher's buffers or the teacher.

`only` picks the tensors: "parameters" (named_parameters), "buffers" (named_buffers), or None
for every entry of the state dict (parameters and buffers).
"""

from __future__ import annotations

import torch


def tensors(net, only=None) -> dict:
    """The net's tensors by name, as `only` picks them (the live tensors, not copies)."""
    if only == "parameters":
        return dict(net.named_parameters())
    if only == "buffers":
        return dict(net.named_buffers())
    return net.state_dict(keep_vars=True)


def snapshot(net, only=None) -> dict:
    """Detached copies of the net's tensors by name, to compare with after a call."""
    return {name: t.detach().clone() for name, t in tensors(net, only).items()}


def changed(net, before, only=None) -> list[str]:
    """Names of the net's tensors (as `only` picks them) whose values differ from `before`, a
    snapshot taken earlier, in the net's own order."""
    return [name for name, t in tensors(net, only).items()
            if not torch.equal(t.detach(), before[name])]
