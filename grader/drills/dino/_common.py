"""What the drill-04 check modules share: the float64 dtype and the check that a function left
the caller's list of views, and every tensor in it, exactly as they were.
"""

from __future__ import annotations

import torch

from ...sandbox import Fail

F64 = torch.float64


def _views_unchanged(name, views, before, count):
    if len(views) != count:
        raise Fail(
            f"the list `{name}` changed length during the call",
            diagnosis="the function modified the caller's list of views (.pop(), .append(), "
            "del, or an in-place sort)",
            hint="read the lists; build new ones if you need to",
        )
    for k, (v, old) in enumerate(zip(views, before)):
        if v.shape != old.shape or not torch.equal(v.detach(), old):
            raise Fail(
                f"view {k} of `{name}` was changed in place by your function",
                diagnosis="an in-place operation modified one of the caller's tensors "
                "(for example `t -= center`, `.div_()` or `.sub_()` on a view)",
                hint="build new tensors (t = t - center) instead of writing into the inputs",
            )
