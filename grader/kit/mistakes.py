"""Mistakes that several drills' checks name, each in one set of words.

A check that recognises one of these mistakes uses the constant here, so that the mistake reads
the same in every drill and `Report.mistakes` counts it once however many rows it turns red.
A drill's own mistakes stay in the drill.
"""

from __future__ import annotations

import torch

from ..sandbox import IN_PLACE_HINT, Fail, call, scalar

FLOAT32 = (
    "the computation drops to float32 somewhere (a .float(), or a float32 tensor made inside "
    "without dtype=)"
)
FLOAT32_HINT = "create helper tensors with the inputs' dtype and device"
GRAPH_CUT = (
    "the gradient is cut: a .detach(), .item(), .numpy() or torch.tensor(...) re-wrap breaks "
    "the graph"
)
GRADIENT_DIFFERS = (
    "part of the computation is detached or uses a non-differentiable step, so the gradient "
    "differs even though the value matches"
)
SINGLE_PAIR_BREAKS = (
    "a batch with a single pair breaks the code (a .squeeze(), or a shape assumed to be larger "
    "than 1)"
)
NOT_A_NUMBER = "the loss is not a single number"
DTYPE_CHANGED = "the dtype changed"
KNOWN_ANSWERS_DIFFER = "the loss differs from the reference on fixed inputs"
# The diagnosis of a "leaves its inputs unchanged" row; the failure itself carries the words
# `sandbox.call` uses (IN_PLACE below).
INPUTS_CHANGED = "an in-place operation modified the caller's tensors"


def _sandbox_in_place_diagnosis() -> str:
    """The words `sandbox.call` uses for an input changed in place (the headline of that
    mistake), taken from `call` itself so that the two can never drift apart."""
    try:
        call(lambda t: t.add_(1), torch.zeros(1))
    except Fail as f:
        if f.diagnosis:
            return f.diagnosis
    return "an in-place operation modified the caller's tensor"


IN_PLACE = _sandbox_in_place_diagnosis()
# What torch raises when code writes in place into an input that requires grad (or a view of
# one): the same mistake as IN_PLACE, caught by autograd before `call` can compare the inputs.
IN_PLACE_ON_LEAF = "is being used in an in-place operation"


def call_naming_in_place(fn, *args, hint=IN_PLACE_HINT, **kwargs):
    """`sandbox.call`, except that autograd's crash on an in-place write into an input that
    requires grad is named as the mistake it is (IN_PLACE, with `hint`), not as "it crashed"."""
    try:
        return call(fn, *args, **kwargs)
    except Fail as f:
        if f.crashed and IN_PLACE_ON_LEAF in f.message:
            raise Fail(f.message, diagnosis=IN_PLACE, hint=hint) from None
        raise


def loss_of(fn, *args, **kwargs):
    """The learner's loss as a finite 0-d tensor, through call_naming_in_place."""
    return scalar(call_naming_in_place(fn, *args, **kwargs))
