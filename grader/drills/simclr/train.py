"""Checks for `train_simclr(model, data, *, steps, batch_size, temperature, lr, generator=None)`
(drill 02, SimCLR), run on a small network of the checks' own and traced (see kit/trace.py): one
float loss per step, the loss on z for two different views of the same samples, gradients
cleared, `temperature`, `lr` and `batch_size` used, fresh batches drawn only from the generator,
the loss lowered, and both the backbone and the head trained.
"""

from __future__ import annotations

import math
import numbers

import torch

from ...checks import checklist
from ...inputs import gen as _gen
from ...kit.compare import changed, snapshot
from ...kit.nets import SimCLRNet
from ...kit.trace import DEFAULT, OwnAugment, Trace, loss_steps
from ...sandbox import Fail, call
from ._common import DRILL, _digits, _first_check


def _train_smoke(fn):
    # called directly (not through `call`), so that an untouched stub's NotImplementedError
    # reaches ready()
    fn(SimCLRNet(), _digits(8), steps=1, batch_size=4, temperature=0.5, lr=0.0, generator=_gen(0))


train_checks = checklist("train_simclr", drill=DRILL, smoke=_train_smoke)


# Diagnoses named by more than one check (a later check that sees the same mistake names it in the
# same words, so that one mistake gives one entry in the report).
_LOSS_ON_H = dict(
    diagnosis="the loss is computed on h = f(x) (model.representation) instead of z = g(f(x)): "
    "the projection head never trains",
    hint="give the loss the model's forward output, the projections z, not the representation "
    "h",
)
_NEVER_CHANGE = dict(
    diagnosis="the parameters never change: optimizer.step() is missing, the gradients are "
    "cleared between backward() and step(), or the optimiser holds other parameters than the "
    "model's",
    hint="build the optimiser over all of the model's parameters with the given learning rate, "
    "and take an optimiser step after every backward pass",
)

_TRAIN_RNG = dict(
    diagnosis="the generator is not passed on: augment (or the batch sampling) draws from "
    "torch's global generator",
    hint="pass generator to torch.randperm and to both augment calls",
)


def _trainer(fn, net, data, **kwargs):
    before = torch.get_rng_state() if kwargs.get("generator") is not None else None
    with OwnAugment(fn):
        out = call(fn, net, data, **kwargs)
    if before is not None and not torch.equal(torch.get_rng_state(), before):
        raise Fail("training drew from torch's global generator although it was given one",
                   measured="global generator moved", expected="untouched", **_TRAIN_RNG)
    if isinstance(out, (list, tuple)) and all(isinstance(v, torch.Tensor) for v in out) and out:
        raise Fail(
            "the losses are returned as tensors",
            diagnosis="the list holds loss tensors (each one keeps its whole graph alive); append "
            "loss.item(), a Python float",
            hint="keep each step's loss as a Python float, the tensor's item, not the tensor "
            "with its graph",
        )
    if isinstance(out, numbers.Real) or (isinstance(out, torch.Tensor) and out.dim() == 0):
        raise Fail("train_simclr returned a single number",
                   diagnosis="returns only the last loss instead of the list of every step's loss",
                   hint="collect every step's loss, as a Python float, in a list and return the "
                   "whole list")
    if not isinstance(out, (list, tuple)):
        raise Fail(f"train_simclr returned a {type(out).__name__}",
                   diagnosis="the function does not return the list of losses",
                   hint="return the list of losses at the end of the function")
    return list(out)


_RUN = dict(steps=12, batch_size=16, temperature=0.5, lr=1e-2)


def _traced_run(fn, *, seed=0, **overrides):
    kwargs = {**_RUN, "generator": _gen(seed), **overrides}
    net, data = SimCLRNet(seed), _digits(64)
    with Trace(fn, net) as trace:
        losses = _trainer(fn, net, data, **kwargs)
    return net, data, trace, losses


def _moved_by(fn, seed, **kwargs):
    """Train SimCLRNet(seed) on the 64 digits, with a generator seeded `seed`: (the losses, the
    names of the parameters that changed)."""
    net = SimCLRNet(seed)
    before = snapshot(net, "parameters")
    losses = _trainer(fn, net, _digits(64), **kwargs, generator=_gen(seed))
    return losses, changed(net, before, "parameters")


def _need(trace, name):
    if not trace.found[name]:
        raise Fail(
            f"train_simclr's namespace has no `{name}`",
            diagnosis=f"train_simclr must use the `{name}` function defined in this notebook",
            hint=f"call the notebook's `{name}` function inside the loop",
        )
    calls = trace.augment_calls if name == "augment" else trace.loss_calls
    if not calls:
        raise Fail(f"train_simclr never called `{name}`",
                   diagnosis=f"the training loop does not call `{name}`",
                   hint="each step: two calls to augment, one to nt_xent_loss")


@_first_check(train_checks, "returns one finite loss per step, as Python floats",
              diagnosis="the return value is not the list of every step's loss",
              hint="append each step's loss as a Python float and return the list of them all")
def train_returns(fn):
    _, _, _, losses = _traced_run(fn)
    if len(losses) != _RUN["steps"]:
        raise Fail(f"{_RUN['steps']} steps gave {len(losses)} losses",
                   diagnosis="the number of losses differs from `steps`: the loop runs a "
                   "different number of times, or appends at the wrong place",
                   measured=len(losses), expected=_RUN["steps"])
    bad = [v for v in losses if not isinstance(v, numbers.Real) or isinstance(v, bool)]
    if bad:
        raise Fail(f"the losses include a {type(bad[0]).__name__}",
                   diagnosis="the losses are not Python floats",
                   hint="turn each loss into a Python float with the tensor's item method")
    if not all(math.isfinite(v) for v in losses):
        raise Fail("a loss is NaN or inf", diagnosis="training diverged or the loss is broken")
    return f"{len(losses)} losses, first {losses[0]:.3f}"


@train_checks.add("the loss is computed on z = model(view), not on h", **_LOSS_ON_H)
def train_on_projections(fn):
    _, _, trace, _ = _traced_run(fn)
    _need(trace, "nt_xent_loss")
    steps = loss_steps(trace, _digits(64))
    sides = [s[side]["on"] for s in steps for side in "12"]
    if "h" in sides:
        raise Fail("the tensors given to nt_xent_loss are backbone outputs h",
                   measured="h (24 numbers)", expected="z (12 numbers)")
    if "?" in sides:
        raise Fail(
            "the tensors given to nt_xent_loss are not outputs of the model",
            diagnosis="nt_xent_loss is not given the model's outputs z = model(view)",
            hint="run the model on each of the two views and give both outputs, with the "
            "temperature, to nt_xent_loss",
        )
    return "both inputs of the loss are projections z"


@train_checks.add(
    "the two views are two different augmentations of the same samples",
    diagnosis="the positive pairs are wrong",
    hint="draw one batch of samples per step and call augment on it twice, separately, with "
    "the generator: each call gives one of the two views",
)
def train_two_views(fn):
    _, _, trace, _ = _traced_run(fn)
    _need(trace, "nt_xent_loss")
    steps = loss_steps(trace, _digits(64))
    for s in steps:
        one, two = s["1"], s["2"]
        if one["views"] is None or two["views"] is None:
            raise Fail("the loss inputs could not be traced to the model's outputs",
                       diagnosis="nt_xent_loss is not given the model's outputs for two views",
                       hint="give nt_xent_loss the model's outputs for the two views, one on "
                       "each side")
        if all(one["raw"]) and all(two["raw"]):
            raise Fail("the network sees the raw images: no view is augmented",
                       diagnosis="augment is never applied: both 'views' are the un-augmented "
                       "images, so each pair is identical")
        if one["views"].shape == two["views"].shape and torch.equal(one["views"], two["views"]):
            raise Fail(
                "the two inputs of the loss come from one and the same view",
                diagnosis="the same view is used twice: augment is called once and its output "
                "fed to both sides, so each positive pair is identical and the task is trivial",
            )
        if any(one["raw"]) or any(two["raw"]):
            raise Fail(
                "one side of each pair is the un-augmented image",
                diagnosis="one view is the un-augmented image: SimCLR augments both sides "
                "(the pair (x, augment(x)) is easier and teaches less)",
            )
        if None in one["rows"] or None in two["rows"]:
            raise Fail("some views could not be traced back to a data row",
                       diagnosis="the views are not made by calling augment on rows of `data`",
                       hint="select the batch's rows of `data` first, then augment those rows")
        if one["rows"] != two["rows"]:
            if sorted(one["rows"]) == sorted(two["rows"]):
                raise Fail(
                    "the two views hold the same samples, in a different order",
                    diagnosis="the two views are not aligned: row i of the second view is not a "
                    "view of the same sample as row i of the first",
                    hint="make both views from the same batch tensor x, in the same order",
                )
            raise Fail(
                "row i of the two views comes from different samples",
                diagnosis="the views come from different samples: a positive pair must be two "
                "views of one image (draw the batch once, augment it twice)",
            )
    return f"{len(steps)} steps, each with two distinct views of the same samples"


@train_checks.add(
    "clears the gradients at every step",
    diagnosis="zero_grad is missing: gradients accumulate from step to step, so each update "
    "uses the sum of every past gradient",
    hint="clear the optimiser's gradients once per step: before the backward pass, or after "
    "the optimiser step",
)
def train_zero_grad(fn):
    net = SimCLRNet(2)
    stale = {"head": [], "backbone": []}

    def watch(weight, seen):
        # runs before the new gradient is added to .grad: what is there now is left over
        return weight.register_hook(lambda grad: seen.append(
            weight.grad is not None and bool(weight.grad.abs().max() > 0)))

    handles = [watch(net.projector[-1].weight, stale["head"]),
               watch(net.backbone[1].weight, stale["backbone"])]
    try:
        _trainer(fn, net, _digits(64), **{**_RUN, "generator": _gen(2)})
    finally:
        for handle in handles:
            handle.remove()
    part = "head" if stale["head"] else "backbone"
    seen = stale[part]
    if not seen:
        raise Fail("no gradient reached the network", diagnosis="loss.backward() is never called "
                   "(or the loss is not connected to the model)")
    leftovers = sum(seen[1:])
    if leftovers > len(seen[1:]) / 2:
        raise Fail(f"at {leftovers} of {len(seen) - 1} backward passes the previous step's "
                   "gradient was still there", measured=f"{leftovers} stale", expected="0")
    if part == "backbone":
        # The head's gradient is what this check watches; without one it cannot tell.
        raise Fail("no gradient reached the projection head's last layer (the backbone's is "
                   "cleared at every step)", measured="no gradient in g", expected="a gradient "
                   "in g, cleared at every step", conclusive=False,
                   hint="fix the mistake named above first: this check watches g's gradient")
    return "the gradient is cleared before every backward pass"


@train_checks.add(
    "passes `temperature` on to the loss",
    diagnosis="the temperature argument is ignored: nt_xent_loss runs with its default",
    hint="hand the `temperature` argument on to nt_xent_loss instead of leaving the loss at "
    "its default",
)
def train_temperature(fn):
    _, _, trace, _ = _traced_run(fn, steps=3, temperature=0.3)
    _need(trace, "nt_xent_loss")
    used = {("default" if t is DEFAULT else t) for *_, t in trace.loss_calls}
    if used != {0.3}:
        raise Fail("train_simclr(temperature=0.3) called the loss with temperature "
                   + ", ".join(map(str, used)), measured=used, expected=0.3)
    return "temperature=0.3 reaches the loss"


@train_checks.add(
    "uses the learning rate it is given",
    diagnosis="the lr argument is ignored (a hard-coded learning rate)",
    hint="give the optimiser the `lr` argument as its learning rate, not a number of your own",
)
def train_uses_lr(fn):
    _, moved = _moved_by(fn, 3, steps=3, batch_size=16, temperature=0.5, lr=0.0)
    if moved:
        raise Fail("with lr=0 the parameters still changed", measured="changed",
                   expected="unchanged")
    return "lr=0 leaves the network unchanged"


@train_checks.add(
    "draws batch_size distinct samples, a fresh batch at every step",
    diagnosis="the batches are not drawn as they should be",
    hint="at every step, draw batch_size distinct sample indices afresh from the given "
    "generator (a random permutation, cut short)",
)
def train_batches(fn):
    _, data, trace, _ = _traced_run(fn)
    _need(trace, "nt_xent_loss")
    steps = loss_steps(trace, data)
    batches = [s["1"]["rows"] for s in steps if s["1"]["rows"] and None not in s["1"]["rows"]]
    if not batches:
        raise Fail("the loss inputs could not be traced back to rows of the data",
                   diagnosis="the views are not made by calling augment on rows of `data`")
    sizes = sorted({len(b) for b in batches})
    if sizes != [_RUN["batch_size"]]:
        raise Fail(f"batch_size=16 gave batches of {sizes} samples",
                   diagnosis="batch_size is ignored: each step should use batch_size samples",
                   measured=sizes, expected=16)
    repeated = sum(len(set(b)) < len(b) for b in batches)
    if repeated:
        raise Fail(
            f"{repeated} of {len(batches)} batches hold the same image twice",
            diagnosis="the batch is sampled with replacement, so an image can appear twice and "
            "its views then count as negatives of each other (false negatives)",
            hint="sample without replacement: take the first batch_size entries of a random "
            "permutation of the sample indices",
        )
    seen = {i for b in batches for i in b}
    if len(seen) <= _RUN["batch_size"]:
        raise Fail(
            f"{len(batches)} steps saw only {len(seen)} of the 64 images",
            diagnosis="the same samples are used at every step (for example data[:batch_size]): "
            "draw a fresh random batch each step",
            measured=f"{len(seen)} images", expected="most of the 64",
        )
    return f"{len(batches)} batches of 16 distinct images; {len(seen)} of 64 images seen"


@train_checks.add(
    "is reproducible with a generator, and draws nothing from the global generator",
    **_TRAIN_RNG,
    rng_allowed=True,  # the check reseeds the global RNG itself, to prove training ignores it
)
def train_reproducible(fn):
    kwargs = dict(steps=6, batch_size=16, temperature=0.5, lr=1e-2)
    torch.manual_seed(11)
    a = _trainer(fn, SimCLRNet(4), _digits(64), generator=_gen(4), **kwargs)  # fails if it moves
    torch.manual_seed(12)
    b = _trainer(fn, SimCLRNet(4), _digits(64), generator=_gen(4), **kwargs)
    if a != b:
        raise Fail("two runs with the same generator seed gave different losses",
                   measured=f"{a[-1]:.4f} vs {b[-1]:.4f}" if a and b else "different",
                   expected="identical losses")
    return "same seed, same losses; the global generator is untouched"


@train_checks.add(
    "lowers the loss on a small problem",
    diagnosis="the loss does not go down",
    hint="each step: clear the gradients, backpropagate the loss, then take an optimiser step",
)
def train_lowers_loss(fn):
    losses, moved = _moved_by(fn, 1, steps=40, batch_size=16, temperature=0.5, lr=1e-2)
    if len(losses) < 20 or not all(isinstance(v, numbers.Real) for v in losses):
        raise Fail("expected 40 float losses", diagnosis="the return value is not the list of "
                   "losses (see the first check)")
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    if not moved:
        raise Fail("no parameter of the network changed during training", **_NEVER_CHANGE,
                   measured=f"{first:.3f} -> {last:.3f}", expected="a falling loss")
    if last > first + 0.01:
        raise Fail(f"the loss rose from {first:.3f} to {last:.3f}",
                   diagnosis="the loss rises: the update goes uphill (the loss negated, or a "
                   "negative learning rate)",
                   measured=f"{first:.3f} -> {last:.3f}", expected="a falling loss")
    if last > first - 0.15:
        # A small fall has many causes (part of the network frozen, a tiny step): the checks
        # after this one can name them, so this one does not claim to.
        raise Fail(f"the loss went from {first:.3f} to only {last:.3f} in 40 steps",
                   measured=f"{first:.3f} -> {last:.3f}", expected="a fall of at least 0.15",
                   conclusive=False)
    return f"mean of the first 5 steps {first:.3f}, of the last 5 {last:.3f}"


@train_checks.add(
    "trains both the backbone and the head",
    diagnosis="only part of the network is trained",
    hint="give the optimiser all of the model's parameters; the loss is on z, so gradients "
    "reach g and f",
)
def train_both_parts(fn):
    before = snapshot(SimCLRNet(5), "parameters")
    net, data, trace, _ = _traced_run(fn, seed=5)
    names = changed(net, before, "parameters")
    moved = {part: any(k.startswith(part) for k in names) for part in ("backbone", "projector")}
    if moved["projector"] and not moved["backbone"]:
        raise Fail("the head changed but the backbone did not",
                   diagnosis="only the head is optimised (the optimiser holds "
                   "model.projector.parameters()), or h is detached: the encoder never learns")
    if moved["backbone"] and not moved["projector"]:
        if any(s[side]["on"] == "h" for s in loss_steps(trace, data) for side in "12"):
            raise Fail("the backbone changed but the head did not: the loss was given h",
                       **_LOSS_ON_H)
        raise Fail("the backbone changed but the head did not",
                   diagnosis="the head never trains: the optimiser holds only the backbone's "
                   "parameters, or the loss is not computed on the head's output")
    if not any(moved.values()):
        raise Fail("nothing changed", **_NEVER_CHANGE)
    return "the backbone and the head both changed"
