"""Tracing a learner's training loop from the outside: what it fed its augmentation, its loss
and the network, and where each tensor the loss received came from.

The checks hand the loop a network of their own (kit.nets.SimCLRNet, or any module with a
`backbone` and a `projector`) and, while it runs, put in the loop's namespace (the learner's
function's globals):

- `OwnAugment(fn)`: `augment` is `own_augment`, the checks' augmentation (a one-pixel shift and
  noise, every draw from the generator it is given), so that how good the learner's own
  `augment` is cannot change what a training check sees.
- `Trace(fn, net, loss="nt_xent_loss")`: the same, plus wrappers recording every call of
  `augment` (`augment_calls`: input and output rows) and of the loss (`loss_calls`: its two
  inputs and the temperature passed, or `DEFAULT`), and hooks recording every view the network
  sees with its h and z (`passes`). `found` says which of the two names the namespace holds.
- `loss_steps(trace, data)`: for each loss call, each input traced back, through the network's
  passes and the augment calls, to the rows of `data` it came from (with `match_rows` and
  `row_keys`).

A later drill (MoCo, BYOL, SimSiam) traces its own loop the same way, naming its loss:

    with Trace(train_byol, net, loss="byol_loss") as trace:
        losses = call(train_byol, net, data, ...)
    for step in loss_steps(trace, data):
        step["1"]["rows"], step["2"]["rows"]  # the data rows behind each side of the loss

Everything put in place is restored on exit, the hooks removed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def own_augment(x, generator=None):
    """The checks' augmentation, used in place of the notebook's while a training loop runs: each
    image shifted by up to one pixel each way (zeros come in) plus noise of std 0.1, every draw
    from `generator` (torch's global generator when it is None), as the contract says."""
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    shifts = torch.randint(-1, 2, (n, 2), generator=generator).tolist()
    padded = F.pad(x, (1, 1, 1, 1))
    out = torch.stack([padded[i, ..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
                       for i, (dy, dx) in enumerate(shifts)])
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return out + 0.1 * noise.to(x.device)


own_augment._grader_owned = True


class OwnAugment:
    """While active, the learner's namespace holds `augment` = the checks' own augmentation
    (through `wrap`, if given, so a trace can record its calls); restored on exit."""

    def __init__(self, fn, wrap=None):
        self.space = getattr(fn, "__globals__", None)
        self.wrap = wrap
        self.found, self.saved = False, None

    def __enter__(self):
        space = self.space if isinstance(self.space, dict) else {}
        current = space.get("augment")
        self.found = callable(current)
        if self.found and not getattr(current, "_grader_owned", False):
            self.saved = current
            own = self.wrap(own_augment) if self.wrap else own_augment
            space["augment"] = own
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            self.space["augment"] = self.saved
        return False


DEFAULT = object()  # in loss_calls: the loss was called without a temperature


class Trace:
    """While active: the learner's `augment` and its loss (`nt_xent_loss` unless `loss` names
    another) are wrapped to record every call, and hooks on the network record every view it
    sees. Everything is restored on exit."""

    def __init__(self, fn, net, loss="nt_xent_loss"):
        self._fn = fn
        self.space = getattr(fn, "__globals__", None)
        self.net = net
        self.loss = loss
        self.augment_calls = []  # (input rows, output rows)
        self.loss_calls = []  # (z1, z2, temperature or DEFAULT)
        self.passes = []  # one per backbone call: {"view", "h", "z"}
        self.found = {"augment": False, loss: False}
        self._saved, self._hooks = {}, []

    def __enter__(self):
        space = self.space if isinstance(self.space, dict) else {}
        self._own = OwnAugment(self._fn, wrap=self._wrap_augment).__enter__()
        self.found["augment"] = self._own.found
        if callable(space.get(self.loss)):
            self.found[self.loss] = True
            self._saved[self.loss] = space[self.loss]
            space[self.loss] = self._wrap_loss(space[self.loss])
        self._hooks = [
            self.net.backbone.register_forward_hook(self._on_backbone),
            self.net.projector.register_forward_hook(self._on_projector),
        ]
        return self

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            self.space[name] = original
        self._own.__exit__(*exc)
        for hook in self._hooks:
            hook.remove()
        return False

    def _wrap_augment(self, original):
        def augment(x, *args, **kwargs):
            out = original(x, *args, **kwargs)
            if isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor):
                self.augment_calls.append((x.detach().clone(), out.detach().clone()))
            return out
        augment._grader_owned = True
        return augment

    def _wrap_loss(self, original):
        def loss(z1, z2, *args, **kwargs):
            temperature = args[0] if args else kwargs.get("temperature", DEFAULT)
            if isinstance(z1, torch.Tensor) and isinstance(z2, torch.Tensor):
                self.loss_calls.append((z1.detach().clone(), z2.detach().clone(), temperature))
            return original(z1, z2, *args, **kwargs)
        loss.__name__ = loss.__qualname__ = self.loss
        return loss

    def _on_backbone(self, module, inputs, output):
        self.passes.append({"view": inputs[0].detach().clone(), "h": output.detach().clone(),
                            "z": None})

    def _on_projector(self, module, inputs, output):
        if self.passes and self.passes[-1]["z"] is None:
            self.passes[-1]["z"] = output.detach().clone()


def row_keys(t):
    t = t.detach().flatten(1).contiguous().cpu()
    return [row.numpy().tobytes() for row in t]


def match_rows(query, candidates):
    """For each row of query, (candidate index, row) of a candidate row pointing the same way."""
    q = F.normalize(query.detach().flatten(1).double(), dim=1)
    found = [None] * len(q)
    for k, cand in enumerate(candidates):
        if cand is None or cand.flatten(1).shape[1] != q.shape[1]:
            continue
        c = F.normalize(cand.detach().flatten(1).double(), dim=1)
        best, where = (q @ c.T).max(dim=1)
        for i in range(len(q)):
            if found[i] is None and best[i] > 1 - 1e-6:
                found[i] = (k, where[i].item())
    return found


def loss_steps(trace, data):
    """For every call of the loss: what each of its two inputs was, traced back to the data.

    Returns a list of dicts with "temperature" (as in loss_calls) and, for view 1 and view 2
    (keys "1" and "2"): "on" ("z", "h" or "?"), "views" (the images the network saw, or None),
    "rows" (data row of every sample, None where unknown), "raw" (True where a view is an
    un-augmented data row).
    """
    data_rows = {key: i for i, key in enumerate(row_keys(data))}
    augmented = {}
    for x, out in trace.augment_calls:
        if out.shape[:1] == x.shape[:1]:
            for key_in, key_out in zip(row_keys(x), row_keys(out), strict=True):
                augmented.setdefault(key_out, key_in)
    zs = [p["z"] for p in trace.passes]
    hs = [p["h"] for p in trace.passes]
    steps = []
    for z1, z2, temperature in trace.loss_calls:
        step = {"temperature": temperature}
        for side, q in (("1", z1), ("2", z2)):
            where = match_rows(q, zs)
            on = "z"
            if any(w is None for w in where):
                where_h = match_rows(q, hs)
                if all(w is not None for w in where_h):
                    where, on = where_h, "h"
                else:
                    on = "?"
            if on == "?":
                step[side] = {"on": "?", "views": None, "rows": [None] * len(q), "raw": []}
                continue
            views = torch.stack([trace.passes[k]["view"][r] for k, r in where])
            rows, raw = [], []
            for key in row_keys(views):
                if key in augmented:
                    rows.append(data_rows.get(augmented[key]))
                    raw.append(False)
                else:
                    rows.append(data_rows.get(key))
                    raw.append(key in data_rows)
            step[side] = {"on": on, "views": views, "rows": rows, "raw": raw}
        steps.append(step)
    return steps
