"""Which mistake has this signature: a measured value against the values known mistakes give."""

from __future__ import annotations

import math

from ..inputs import close
from ..sandbox import Fail


def which_mistake(value, signatures, *, rel: float = 1e-4, abs_: float = 1e-5) -> str | None:
    """The mistake whose signature `value` matches, or None.

    `signatures` is a list of (expected value, mistake) pairs or a dict {value: mistake}; the
    first match wins, so list the most specific signatures first. Values are numbers (a
    signature that is not finite never matches), or tensors compared elementwise (same shape)
    with the same tolerance: rel=0, abs_=0 asks for equality (integer predictions, say).
    """
    pairs = signatures.items() if isinstance(signatures, dict) else signatures
    for signature, mistake in pairs:
        if _matches(value, signature, rel, abs_):
            return mistake
    return None


def _matches(value, signature, rel, abs_) -> bool:
    import torch

    if isinstance(value, torch.Tensor) or isinstance(signature, torch.Tensor):
        a = torch.as_tensor(value, dtype=torch.float64)
        b = torch.as_tensor(signature, dtype=torch.float64)
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rel, atol=abs_))
    return math.isfinite(signature) and close(float(value), float(signature), rel, abs_)


def fail_naming(message, mistake, *, hints=None, **details) -> Fail:
    """The Fail for a wrong value whose signature named `mistake` (from which_mistake): that
    diagnosis, with its hint from `hints` where there is one; when no signature matched
    (`mistake` is None) the row cannot pin the cause, so it follows from the headline."""
    return Fail(message, diagnosis=mistake, hint=(hints or {}).get(mistake),
                conclusive=mistake is not None, **details)
