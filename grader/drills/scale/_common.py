"""What the drill-09 check modules share: the drill's name, the way the learner is called, and
the words of the mistakes that more than one of its checks name."""

from __future__ import annotations

from ...kit.mistakes import call_naming_in_place as call  # noqa: F401  (the drill's modules use it)
from ...kit.mistakes import loss_of as value_of  # noqa: F401
from ...sandbox import Fail
from ._world import RanksDisagree, run_ranks

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





DISAGREE = ("the ranks do not call the same collectives with tensors of the same shape (a real "
            "group would hang here)")


def on_ranks(world, body, *, named=True):
    """`run_ranks`, with ranks that disagree on their collectives turned into a Fail: named as
    that mistake, or (named=False, where an earlier check names it) following from it."""
    try:
        return run_ranks(world, body)
    except RanksDisagree as exc:
        raise Fail(str(exc), diagnosis=DISAGREE if named else None, conclusive=named) from None
