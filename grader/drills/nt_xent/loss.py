"""`nt_xent_loss`, part 1: closed forms, the positive, the temperature and invariances."""

from __future__ import annotations

import math

import torch

from ...inputs import close as _close
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.lookup import fail_naming, which_mistake
from ...kit.mistakes import IN_PLACE
from ...sandbox import Fail
from . import _mistakes as M
from ._common import checks
from ._common import loss_of as _loss

laws.returns_scalar(
    checks, loss=_loss,
    hint="the loss is the mean over the 2N anchors: a 0-dimensional tensor")
laws.leaves_inputs_unchanged(
    checks, run=_loss, diagnosis=IN_PLACE,
    hint="normalise into a new tensor, for example with F.normalize, rather than in place",
    inputs=lambda: [(3.0 * _randn(5, 6, seed=2), _randn(5, 6, seed=3) + 1.0),
                    (_randn(5, 6, seed=2), _randn(5, 6, seed=3))])


def _uniform_rescale(fn, z1, z2, base):
    uniform = _loss(fn, 3.0 * z1, 3.0 * z2).item()
    if not _close(uniform, base):
        raise Fail("multiplying every embedding by a constant changed the loss",
                   measured=f"{uniform:.5f}", expected=f"{base:.5f} (unchanged)")


laws.invariant_to_rescaling(
    checks, loss=_loss, uniform=_uniform_rescale, other_rows=0.25,
    diagnosis="the embeddings are not L2-normalised, so the loss uses dot products, not cosine "
    "similarity",
    hint="normalise each row of z1 and z2 to unit length before comparing them",
    axis_diagnosis="the embeddings are normalised along the wrong axis: each *row* (one "
    "embedding, dim=1) must have unit length, not each column",
    axis_hint="normalise over the feature dimension (the last one), so that each row, one "
    "embedding, has unit length")


@checks.add(
    "collapsed embeddings give exactly log(2N-1)",
    diagnosis="the loss of a collapsed batch is wrong",
    hint="with every embedding equal, each anchor sees 2N-1 equally likely candidates",
)
def collapsed(fn):
    n, tau = 4, 0.5
    z = torch.ones(n, 3)
    value = _loss(fn, z, z.clone(), tau).item()
    expected = math.log(2 * n - 1)
    if _close(value, expected):
        return f"{value:.5f} = log({2 * n - 1})"
    raise Fail(
        f"a collapsed batch of N={n} gave {value:.5f}",
        diagnosis=which_mistake(value, M.collapsed_signatures(n, tau)),
        measured=f"{value:.5f}",
        expected=f"log({2 * n - 1}) = {expected:.5f}",
    )


@checks.add(
    "a view never matches itself",
    diagnosis=M.DIAGONAL_NOT_MASKED,
    hint=M.HINTS[M.DIAGONAL_NOT_MASKED],
)
def masks_self(fn):
    # Identical views of well-separated points at low temperature: each anchor's partner is an
    # exact copy, so a correct loss is ~0. Left unmasked, the anchor itself ties with the
    # partner and the loss is ~log 2.
    z = torch.eye(6, 16) + 0.01 * _randn(6, 16, seed=6)
    value = _loss(fn, z, z.clone(), 0.05).item()
    if abs(value - math.log(2)) < 0.05:
        raise Fail(
            f"identical views gave {value:.4f}, about log 2: two candidates tie for each anchor",
            measured=f"{value:.4f}",
            expected="about 0",
        )
    if value > 0.05:
        raise Fail(
            f"identical views gave {value:.4f}",
            measured=f"{value:.4f}",
            expected="about 0",
            diagnosis="identical, well-separated views should be easy to match, so the positive "
            "or the temperature is off (the checks below narrow it down)",
            conclusive=False,
        )
    return f"{value + 0.0:.2e} for identical views"  # + 0.0: a loss of -0.0 reads 0


def _perfect(n, tau):
    """The correct loss of z1 = z2 = n orthonormal rows: the partner scores 1/tau, the 2n - 2
    others 0."""
    return -1 / tau + math.log(math.exp(1 / tau) + 2 * n - 2)


def _perfect_pairs_mistake(value, n, tau):
    return which_mistake(value, M.perfect_pairs_signatures(n, tau), rel=1e-3)


@checks.add(
    "perfect pairs with orthogonal negatives give a loss near 0",
    diagnosis=M.WRONG_PARTNER,
    hint=M.HINTS[M.WRONG_PARTNER],
)
def perfect_pairs(fn):
    n, tau = 5, 0.05
    z = torch.eye(n, 8)
    value = _loss(fn, z, z.clone(), tau).item()
    expected = _perfect(n, tau)
    if _close(value, expected, rel=1e-3, abs_=1e-4):
        return f"{value + 0.0:.2e}"  # + 0.0: a loss of -0.0 reads 0
    raise fail_naming(f"z1 = z2 = orthonormal rows at tau={tau} gave {value:.4g}",
                      _perfect_pairs_mistake(value, n, tau), hints=M.HINTS,
                      measured=f"{value:.4g}", expected=f"{expected:.2e}")


@checks.add(
    "the positive is the partner view",
    diagnosis=M.WRONG_PARTNER,
    hint="check the target of the first and of the last row by hand",
)
def partner_is_positive(fn):
    n, tau = 6, 0.1
    z1 = torch.eye(n, 8)
    matched = _loss(fn, z1, z1.clone(), tau).item()
    shifted = _loss(fn, z1, z1.roll(1, dims=0), tau).item()
    if not matched < shifted - 1.0:
        # The aligned batch is the perfect-pairs input: a known wrong value there names the
        # mistake; a right one (so only the shifted batch is off) means the target is wrong.
        right = _close(matched, _perfect(n, tau), rel=1e-3)
        mistake = None if right else _perfect_pairs_mistake(matched, n, tau)
        raise Fail(
            "aligning z2[i] with z1[i] did not give a lower loss than aligning z2[i] with "
            "z1[i-1]",
            measured=f"aligned {matched:.3f}, shifted {shifted:.3f}",
            expected="aligned far below shifted",
            diagnosis=mistake,
            hint=M.HINTS.get(mistake),
            conclusive=right or mistake is not None,
        )
    return f"aligned {matched:.3f} < shifted {shifted:.3f}"


@checks.add(
    "lower temperature sharpens the softmax",
    diagnosis="the temperature is applied the wrong way",
    hint="similarities are divided by tau: a small tau makes large logits",
)
def temperature_sharpens(fn):
    z = torch.eye(4, 8) + 0.1 * _randn(4, 8, seed=7)
    z2 = z + 0.05 * _randn(4, 8, seed=8)
    losses = [_loss(fn, z, z2, t).item() for t in (0.1, 0.5, 1.0)]
    text = ", ".join(f"tau={t}: {v:.3f}" for t, v in zip((0.1, 0.5, 1.0), losses))
    if losses[0] < losses[1] < losses[2]:
        return text
    if losses[0] > losses[1] > losses[2]:
        # Logits sim * tau lie in [-tau, tau], so each anchor's loss is within 2 tau of
        # log(2N-1); a loss outside that band grows for another reason (a positive that scores
        # below a negative, say), which this check cannot tell.
        multiplied = all(abs(v - math.log(2 * len(z) - 1)) <= 2 * t + 1e-4
                         for t, v in zip((0.1, 0.5, 1.0), losses))
        raise Fail(
            "the loss on well-matched pairs grows as tau shrinks: " + text
            + ("" if multiplied else ", by more than similarities multiplied by tau allow"),
            diagnosis=M.TEMPERATURE_MULTIPLIED if multiplied else None,
            measured=text,
            expected="loss falls as tau falls",
            conclusive=multiplied,
        )
    if _close(losses[0], losses[2]):
        raise Fail(
            "the loss does not depend on the temperature: " + text,
            diagnosis=M.TEMPERATURE_IGNORED,
            measured=text,
            expected="loss falls as tau falls",
        )
    raise Fail("the loss does not fall steadily as tau falls: " + text, measured=text)


laws.invariant_to_swapping(
    checks, "is symmetric in (z1, z2)", seeds=(9, 10), loss=_loss,
    diagnosis="only one direction is counted: the anchors of z1 are used but not those of z2; "
    "NT-Xent averages over all 2N anchors",
    hint="every embedding in the stacked batch is an anchor once",
    message="swapping the views changed the loss")
# Permuting the pairs changes the loss under wrong targets and under a wrong mask alike: the
# checks that can tell them apart name the mistake, so this one follows from them.
laws.invariant_to_reordering(
    checks, seeds=(11, 12, 13), loss=_loss, conclusive=False,
    diagnosis="the loss depends on the order of the pairs in the batch, so the targets or the "
    "mask do not follow the pairs")
