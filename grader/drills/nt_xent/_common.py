"""What every `nt_xent_loss` check shares: the checklist and the way the function is called."""

from __future__ import annotations

import torch

from ...checks import checklist
from ...kit.mistakes import call_naming_in_place
from ...sandbox import scalar

checks = checklist(
    "nt_xent_loss",
    drill="01_nt_xent",
    smoke=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4)),
)


def call(fn, *args, **kwargs):
    """`sandbox.call`, except that a crash autograd raises because the code wrote in place
    into an input that requires grad is named as that mistake (the words `call` itself uses
    when it finds an input changed), not as "it crashed"."""
    return call_naming_in_place(
        fn, *args, hint="build new tensors from the inputs instead of writing into them: an input "
        "that requires grad cannot be changed in place",
        **kwargs)


def loss_of(fn, z1, z2, temperature=0.5):
    """The learner's loss as a finite 0-d tensor (or a Fail saying why it is not one)."""
    return scalar(call(fn, z1, z2, temperature=temperature))
