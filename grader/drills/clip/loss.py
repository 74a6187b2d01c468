"""Checks for `clip_loss(image_emb, text_emb, logit_scale)` (drill 03): a scalar, symmetric,
two-direction cross-entropy over the N x N cosine-similarity matrix times logit_scale, with the
diagonal as targets; checked on collapsed towers, perfect pairs, a duplicated caption and N = 1,
for invariance to embedding lengths and pair order, gradients, overflow at the cap, float64, and
the known answers in grader/data/clip_loss.json."""

from __future__ import annotations

import math

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import close as _close
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.lookup import fail_naming, which_mistake
from ...kit.mistakes import FLOAT32, GRAPH_CUT
from ...sandbox import Fail, scalar
from ._common import CAP, INIT
from ._probes import (
    TOL,
    _call_loss,
    _fail_non_finite_at_cap,
    _grad_mistake,
    _loss,
    _scale,
    _scale_probe,
)
from ._signatures import (
    NO_NEGATIVES,
    NOT_DIAGONAL,
    ONE_SIDED,
    OVERFLOW,
    OVERFLOW_HINT,
    SCALE_AS_NUMBER,
    _collapsed_signatures,
    _duplicate_caption_case,
    _perfect,
    _perfect_pair_signatures,
    _two_direction_signatures,
    _wrong_targets,
)

loss_checks = checklist(
    "clip_loss",
    drill="03_clip",
    smoke=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4), torch.tensor(10.0)),
)




def _at_init(fn, image, text):
    """The loss at CLIP's initial multiplier 1/0.07; not finite there: a -inf in the logits."""
    return _loss(fn, image, text, INIT)


laws.returns_scalar(
    loss_checks, loss=_at_init, show_dtypes=True,
    hint="the loss is one number: the mean over pairs, averaged over the two directions")
laws.leaves_inputs_unchanged(
    loss_checks, run=_loss,
    hint="normalise into new tensors, for example with F.normalize, rather than in place",
    inputs=lambda: [(3.0 * _randn(5, 6, seed=2), _randn(5, 6, seed=3) + 1.0, _scale(5.0)),
                    (_randn(5, 6, seed=2), _randn(5, 6, seed=3), _scale(INIT))])


@loss_checks.add(
    "collapsed towers give exactly log N",
    diagnosis="the loss of a collapsed batch is wrong",
    hint="with every embedding equal, each image sees N equally likely captions (and each "
    "caption N equally likely images)",
)
def loss_collapsed(fn):
    n, s = 4, 10.0
    z = torch.ones(n, 3)
    value = _loss(fn, z, z.clone(), _scale(s)).item()
    expected = math.log(n)
    if _close(value, expected):
        return f"{value:.5f} = log({n})"
    if value < 0:
        raise Fail(f"a collapsed batch gave {value:.5f}", diagnosis=NO_NEGATIVES,
                   hint="each row of the similarity matrix is a classification over all N "
                   "captions: use a cross-entropy with the diagonal as targets",
                   measured=f"{value:.5f}", expected=f"log({n}) = {expected:.5f}")
    mistake = which_mistake(value, _collapsed_signatures(n))
    raise fail_naming(f"a collapsed batch of N={n} gave {value:.5f}"
                      + ("" if mistake else ", a value no known mistake gives"), mistake,
                      measured=f"{value:.5f}", expected=f"log({n}) = {expected:.5f}")


@loss_checks.add(
    "logit_scale multiplies the cosine similarities",
    diagnosis="the scale is not applied as a multiplier of the cosine similarities",
    hint="multiply the cosine similarities by logit_scale as given: it is already the "
    "exponentiated, clamped multiplier",
)
def loss_scale_multiplies(fn):
    n = 4
    values, mistake = _scale_probe(fn)  # 4 orthonormal pairs (float64) at scales 0.5 and 3
    value, expected = values[3.0], _perfect(3.0, n)
    if mistake == "":
        return f"{value:.5f} at logit_scale = 3"
    # A value that is no known mistake's signature: the cause lies elsewhere (another check).
    raise fail_naming(f"orthonormal perfect pairs at logit_scale = 3 gave {value:.5f}"
                      + ("" if mistake else f" ({values[0.5]:.5f} at 0.5), a value no known "
                         "mistake of the scale gives"), mistake, measured=f"{value:.5f}",
                      expected=f"{expected:.5f} = -3 + log(e^3 + {n - 1})")


@loss_checks.add(
    "perfect pairs at scale 100 give a loss near 0",
    diagnosis=NOT_DIAGONAL,
    hint="the targets are the diagonal: the target of row i is its own index i, counted "
    "from 0",
)
def loss_perfect_pairs(fn):
    n, s = 5, CAP
    z = torch.eye(n, 8)
    out = _call_loss(fn, z, z.clone(), _scale(s))
    if laws.non_finite(out):
        _fail_non_finite_at_cap(fn, z, z.clone(),
                                f"perfect pairs at logit_scale = {s:g} gave {out.item()}",
                                "about 0")
    value = scalar(out).item()
    expected = _perfect(s, n)
    if value <= 1e-4:
        # Rounding can leave a correct loss a hair below 0: a zero reads 0, never -0.00e+00.
        return f"{value if abs(value) >= 1e-7 else 0.0:.2e}"
    mistake = which_mistake(value, _perfect_pair_signatures(s, n), rel=1e-3)
    if mistake is None and value > 0 and _wrong_targets({s: value}, n):
        mistake = NOT_DIAGONAL  # k of the 2N rows and columns on target: log(e^s + N-1) - ks/2N
    raise fail_naming(f"z_image = z_text = orthonormal rows at logit_scale={s:g} gave {value:.4g}"
                      + ("" if mistake else ", a value no known mistake gives"), mistake,
                      measured=f"{value:.4g}", expected=f"{expected:.2e} (about 0)")


def _towers_rescaled(fn, image, text, base):
    changed = [name for name, img, txt in (("image", 3.0 * image, text), ("text", image,
                                                                          0.25 * text))
               if not _close(_at_init(fn, img, txt).item(), base)]
    if changed:
        which = " and ".join(changed)
        raise Fail(
            f"multiplying every {which} embedding by a constant changed the loss",
            diagnosis=None if len(changed) == 2 else
            f"only one tower is normalised: the {which} embeddings are not L2-normalised",
            measured="changed", expected=f"{base:.5f} (unchanged)",
        )


laws.invariant_to_rescaling(
    loss_checks, loss=_at_init, uniform=_towers_rescaled,
    diagnosis="the embeddings are not L2-normalised, so the logits use dot products, not cosine "
    "similarities",
    hint="normalise each row of both towers' outputs to unit length before the matrix product",
    axis_diagnosis="the embeddings are normalised along the wrong axis: each row (one "
    "embedding, dim=-1) must have unit length, not each column",
    axis_hint="normalise over the feature dimension (the last one), so that each row, one "
    "embedding, has unit length")
# Swapping the towers swaps the two directions, so which one is missing (or doubled) cannot be
# read off here: the duplicated-caption case of the next check tells them apart.
laws.invariant_to_swapping(
    loss_checks, "is symmetric in swapping the two towers", seeds=(6, 7), loss=_at_init,
    diagnosis=ONE_SIDED, conclusive=False,
    hint="compute the cross-entropy of the logits and of the transposed logits, and average",
    message="swapping image_emb and text_emb changed the loss (the matrix is only transposed, "
    "so a two-way loss is unchanged)")


@loss_checks.add(
    "averages the image-to-text and text-to-image cross-entropies",
    diagnosis="the two directions are not averaged",
    hint="average two cross-entropies, one over the rows and one over the columns of the "
    "logits, each itself a mean over the N pairs",
)
def loss_two_directions(fn):
    s = 2.0
    image = torch.eye(3, 4, dtype=torch.float64)
    text = image[[0, 0, 2]].clone()
    value = _loss(fn, image, text, _scale(s, torch.float64)).item()
    i2t, t2i = _duplicate_caption_case(s)
    expected = (i2t + t2i) / 2
    if _close(value, expected, **TOL):
        return f"{value:.5f}: image-to-text {i2t:.4f}, text-to-image {t2i:.4f}"
    mistake = NO_NEGATIVES if value < 0 else which_mistake(
        value, _two_direction_signatures(i2t, t2i), **TOL)
    # Neither direction alone, nor their sum: the value is wrong for another reason.
    raise fail_naming(
        "images e1, e2, e3 with captions e1, e1, e3 (caption 1 repeats caption 0) at "
        f"logit_scale = {s:g}: the two directions differ here"
        + ("" if mistake else f"; {value:.5f} is neither direction alone nor their sum"),
        mistake, measured=f"{value:.5f}",
        expected=f"{expected:.5f} = ({i2t:.5f} image-to-text + {t2i:.5f} text-to-image) / 2",
    )


@loss_checks.add(
    "the positive of image i is caption i",
    diagnosis=NOT_DIAGONAL,
    hint="check the target of the first and of the last row by hand: row i of image_emb and "
    "row i of text_emb are a pair",
)
def loss_diagonal_positive(fn):
    n = 6
    image = torch.eye(n, 8)
    matched = _loss(fn, image, image.clone(), 10.0).item()
    shifted = _loss(fn, image, image.roll(1, dims=0), 10.0).item()
    if not matched < shifted:
        raise Fail("aligning caption i with image i did not give a lower loss than aligning it "
                   "with image i-1", measured=f"aligned {matched:.3f}, shifted {shifted:.3f}",
                   expected="aligned far below shifted")
    if not matched < shifted - 1.0:
        # The diagonal is preferred, only by too little: the logits are too flat (the scale).
        raise Fail("aligning caption i with image i gave a lower loss than aligning it with "
                   "image i-1, but by less than 1 at logit_scale = 10: the logits are too flat",
                   measured=f"aligned {matched:.3f}, shifted {shifted:.3f}",
                   expected="aligned far below shifted", conclusive=False)
    return f"aligned {matched:.3f} < shifted {shifted:.3f}"


def _targets_mistake(fn):
    """NOT_DIAGONAL where the logit_scale check's probe finds the targets off the diagonal."""
    try:
        mistake = _scale_probe(fn)[1]
    except Fail:
        mistake = None
    return NOT_DIAGONAL if mistake == NOT_DIAGONAL else None


laws.invariant_to_reordering(
    loss_checks, seeds=(8, 9, 10), loss=_at_init, mistake=_targets_mistake,
    diagnosis="the loss depends on the order of the pairs in the batch, so the targets do not "
    "follow the pairs")


def _gradients_mistake(fn, missing, leaves):
    mistake = _grad_mistake(fn, missing, leaves["image_emb"], leaves["text_emb"], INIT)
    return mistake, ("multiply the similarity matrix by the logit_scale tensor itself"
                     if mistake == SCALE_AS_NUMBER else None)


laws.gradients_reach(
    loss_checks, "gradients reach both towers and the logit scale", diagnosis=GRAPH_CUT,
    hint="stay in torch operations from the three inputs to the returned loss",
    # logit_scale gets its gradient through exp(), from the log-scale, as LogitScale holds it
    loss=lambda fn, image, text, log_scale: _loss(fn, image, text, log_scale.exp()),
    leaves=lambda: {"image_emb": _randn(5, 8, seed=11).requires_grad_(True),
                    "text_emb": _randn(5, 8, seed=12).requires_grad_(True),
                    "logit_scale": torch.tensor(math.log(INIT), requires_grad=True)},
    mistake=_gradients_mistake, says="image, text and scale all receive gradients")
laws.finite_at_extreme(
    loss_checks, "stays finite at logit_scale = 100 (the cap)", seeds=(13, 14),
    where="logit_scale = 100", diagnosis=OVERFLOW, hint=OVERFLOW_HINT,
    call=lambda fn, image, text: _call_loss(fn, image, text, _scale(CAP)),
    not_finite=lambda fn, image, text, message: _fail_non_finite_at_cap(
        fn, image, text, message, "a finite number near 0"))


def _collapsed_float64_wrong(value, expected):
    return Fail(f"a collapsed float64 batch is off by more than float64 rounding (by "
                f"{abs(value - expected):.3g}: a float64 loss with a wrong value, not a loss of "
                "precision)", measured=f"{value:.15f}", expected=f"{expected:.15f}",
                conclusive=False)


laws.keeps_float64(loss_checks, loss=lambda fn, a, b: _loss(fn, a, b, _scale(INIT, torch.float64)),
                   expected=math.log(5), wrong_value=_collapsed_float64_wrong)
# A wrong value at N = 1 (the code ran) points at no .squeeze(): other checks say why.
laws.single_pair(
    loss_checks, loss=_at_init, seeds=(15, 16),
    hint="with a single pair the caption is the only candidate, so the loss is exactly 0",
    wrong_value=lambda value, a, b: Fail(
        "N = 1 should give exactly 0: the only caption is the right one; the code runs but "
        f"gives {value:.5f}", measured=f"{value:.5f}", expected="0", conclusive=False))


def _stored_case(case):
    leaves = {name: torch.tensor(case[name], dtype=torch.float64, requires_grad=True)
              for name in ("image_emb", "text_emb", "logit_scale")}
    return tuple(leaves.values()), leaves


def _where(case):
    return f"N={len(case['image_emb'])}, logit_scale={case['logit_scale']:.4g}"


def _stored_value(case, loss):
    if loss.dtype != torch.float64:
        raise Fail(f"{_where(case)}: float64 inputs gave a {loss.dtype} loss", diagnosis=FLOAT32,
                   measured=loss.dtype, expected="torch.float64")
    if laws.off_stored(loss.item(), case["loss"]):
        # Which mistake gives this value is for the checks above to say.
        raise Fail(f"{_where(case)}: wrong value", measured=f"{loss.item():.8f}",
                   expected=f"{case['loss']:.8f}", conclusive=False)


laws.known_answers(
    loss_checks, cases=lambda: load_cases("clip_loss"), build=_stored_case, loss=_loss,
    check_value=_stored_value, where=_where,
    missing_mistake=lambda fn, missing, args, case: _grad_mistake(fn, missing, *args[:2],
                                                                  case["logit_scale"]),
    hint="if the other checks pass, compare the scale handling and the reduction")
