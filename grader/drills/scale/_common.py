"""What the drill-09 check modules share: the drill's name, the way the learner is called, and
the words of the mistakes that more than one of its checks name."""

from __future__ import annotations

from ...kit.mistakes import call_naming_in_place
from ...sandbox import scalar

DRILL = "09_scale"

# gather_with_grad's mistakes; distributed_clip_loss names the same ones when its gradient
# shows them.
NOT_REDUCED = (
    "the gradients from the other ranks' losses never reach this rank: the gather's backward "
    "pass must sum the incoming gradient over all ranks (an all_reduce) before it takes this "
    "rank's slice"
)
NOT_REDUCED_HINT = (
    "every rank's loss used every rank's rows: in the backward pass, add up what all the ranks "
    "send back for the gathered tensor, then keep the part that belongs to this rank"
)


def call(fn, *args, **kwargs):
    """`sandbox.call`, naming autograd's crash on an in-place write into an input as that."""
    return call_naming_in_place(
        fn, *args, hint="build new tensors from the inputs instead of writing into them",
        **kwargs)


def value_of(fn, *args, **kwargs):
    return scalar(call(fn, *args, **kwargs))
