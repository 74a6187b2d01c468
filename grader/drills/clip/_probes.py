"""How the `clip_loss` checks of drill 03 call the learner's loss, and the probes a later check
runs again to tell which known mistake explains what it measured.

`_loss` names a loss that is not finite where nothing can overflow, and a crash from an input
changed in place, in the same words as the first check that sees the mistake; `_scale_probe` is
the measurement of the logit_scale check, which a check that sees a wrong or non-finite value
asks before blaming a mistake of its own.
"""

from __future__ import annotations

import torch

from ...inputs import close as _close
from ...kit.laws import non_finite
from ...kit.lookup import which_mistake
from ...kit.mistakes import call_naming_in_place
from ...sandbox import Fail, scalar
from ._signatures import (
    INF_HINT,
    INF_LOGITS,
    NO_NEGATIVES,
    NOT_DIAGONAL,
    OVERFLOW,
    OVERFLOW_HINT,
    SCALE_AS_NUMBER,
    SCALE_IGNORED,
    _detached,
    _perfect,
    _scale_signatures,
    _wrong_targets,
)

# Below this multiplier exp() of a cosine logit cannot overflow, even in float32.
NO_OVERFLOW = 20.0
TOL = {"rel": 1e-5, "abs_": 1e-7}  # float64 closed forms


def _scale(value, dtype=torch.float32, grad=False):
    return torch.tensor(float(value), dtype=dtype, requires_grad=grad)


def _call_loss(fn, *args):
    """`call`, except that the crash of an in-place change to an input that requires grad is
    named as the in-place change it is."""
    return call_naming_in_place(
        fn, *args, hint="normalise into new tensors, never into the inputs themselves: an "
        "input that requires grad cannot be changed in place")


def _loss(fn, image, text, scale):
    """The learner's loss as a finite scalar tensor; a loss that is not finite at a multiplier
    where nothing can overflow is a -inf (or a division by zero) in the logits."""
    if not isinstance(scale, torch.Tensor):
        scale = _scale(scale, image.dtype)
    out = _call_loss(fn, image, text, scale)
    s = float(scale.detach())
    if non_finite(out) and abs(s) <= NO_OVERFLOW:
        raise Fail(f"the loss is {out.item()} at logit_scale = {s:.3g}, where nothing can "
                   "overflow", diagnosis=INF_LOGITS, hint=INF_HINT, measured=out.item(),
                   expected="a finite number")
    return scalar(out)


def _scale_probe(fn):
    """The losses of 4 orthonormal perfect pairs (float64) at logit_scale 0.5 and 3, and what
    they show: "" when the scale is handled right, the mistake their values are the signature
    of, or None (wrong, for a reason not recognised)."""
    n = 4
    z = torch.eye(n, 6, dtype=torch.float64)
    values = {s: _loss(fn, z, z.clone(), _scale(s, torch.float64)).item() for s in (0.5, 3.0)}
    value = values[3.0]
    if _close(value, _perfect(3.0, n), **TOL):
        return values, ""
    if _close(values[0.5], value, **TOL):
        return values, SCALE_IGNORED
    if _wrong_targets(values, n):
        return values, NOT_DIAGONAL
    if value < 0:
        return values, NO_NEGATIVES
    return values, which_mistake(value, _scale_signatures(n), **TOL)


def _scale_right(fn) -> bool:
    """Whether the scale probe finds the scale and the targets right (False if it fails)."""
    try:
        return _scale_probe(fn)[1] == ""
    except Fail:
        return False


def _fail_non_finite_at_cap(fn, image, text, message, expected):
    """Raise the Fail for a loss that is not finite at logit_scale = 100: an overflow only if the
    loss is finite at a small scale and the scale is handled right; if it is not finite at a
    small scale either, a -inf got into the logits; if the scale is mishandled (exp() of it, say),
    the overflow follows from that mistake, which the logit_scale check names."""
    try:
        _loss(fn, image.detach().clone(), text.detach().clone(), 10.0)
        scale_right = _scale_right(fn)
    except Fail as f:
        if f.diagnosis == INF_LOGITS:
            raise Fail(f"{message}, and {f.message}", diagnosis=INF_LOGITS, hint=INF_HINT,
                       measured="not finite at logit_scale = 100 and 10",
                       expected=expected) from None
        scale_right = False
    if scale_right:
        raise Fail(message, diagnosis=OVERFLOW, hint=OVERFLOW_HINT, measured="not finite",
                   expected=expected)
    raise Fail(f"{message}; the loss is already wrong at small scales (see the logit_scale "
               "check), so the overflow may follow from how the scale is used",
               diagnosis=OVERFLOW, hint=OVERFLOW_HINT, measured="not finite", expected=expected,
               conclusive=False)


def _grad_mistake(fn, missing, image, text, scale):
    """The mistake of a loss whose gradient does not reach the inputs in `missing`: for
    logit_scale alone, whether the loss ignores the scale altogether or uses it as a number."""
    if missing != ["logit_scale"]:
        return _detached(missing)
    a = _loss(fn, image.detach(), text.detach(), float(scale)).item()
    b = _loss(fn, image.detach(), text.detach(), 2 * float(scale)).item()
    return SCALE_IGNORED if _close(a, b) else SCALE_AS_NUMBER
