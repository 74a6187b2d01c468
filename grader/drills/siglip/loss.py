"""`siglip_loss(image_emb, text_emb, logit_scale, logit_bias)`: SigLIP's pairwise sigmoid loss.

Both towers are L2-normalised, the logits are `logit_scale * image @ text.T + logit_bias`, each
of the N x N pairs is its own binary problem (label +1 on the diagonal, -1 elsewhere), and the
loss is the sum of -log sigmoid(label * logit) over the matrix divided by N. The closed forms
and the signatures of the classic mistakes are in `_signatures`.
"""

from __future__ import annotations

import math

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import close as _close
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.mistakes import FLOAT32, GRAPH_CUT, IN_PLACE, SINGLE_PAIR_BREAKS, call_naming_in_place
from ...sandbox import Fail, scalar
from ._signatures import (
    BIAS_AS_NUMBER,
    DRILL,
    HINTS,
    NOT_DIAGONAL,
    NOT_NORMALISED,
    OVERFLOW,
    OVERFLOW_HINT,
    PROBES,
    SCALE_AS_NUMBER,
    TEMPERATURE,
    correct,
    signatures,
)

checks = checklist(
    "siglip_loss", drill=DRILL,
    smoke=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4), torch.tensor(10.0), torch.tensor(-10.0)))

INIT_SCALE, INIT_BIAS = 10.0, -10.0  # SigLIP's start: t = exp(log 10), b = -10
CAPPED = ("the log-sigmoid is clamped (or an epsilon is added inside the log): a pair that is "
          "badly wrong no longer costs what its logit says")
_IN_PLACE_HINT = "normalise into new tensors, never into the inputs themselves"


def _number(value, dtype=torch.float32, grad=False):
    return torch.tensor(float(value), dtype=dtype, requires_grad=grad)


def _call(fn, image, text, scale, bias):
    if not isinstance(scale, torch.Tensor):
        scale = _number(scale, image.dtype)
    if not isinstance(bias, torch.Tensor):
        bias = _number(bias, image.dtype)
    return call_naming_in_place(fn, image, text, scale, bias, hint=_IN_PLACE_HINT)


def _loss(fn, image, text, scale=INIT_SCALE, bias=INIT_BIAS):
    return scalar(_call(fn, image, text, scale, bias))


def _towers(d, n, dtype=torch.float64):
    """Image rows e_1..e_n and text rows d * e_i: cosine d on the diagonal, 0 elsewhere."""
    image = torch.eye(n, n + 2, dtype=dtype)
    return image, d * image.clone()


def _probe_values(fn):
    """The learner's loss on each of the PROBES (float64), or None where it fails there."""
    values = []
    for d, _, n, t, b in PROBES:
        try:
            out = _call(fn, *_towers(d, n), _number(t, torch.float64),
                        _number(b, torch.float64))
            values.append(float(out) if isinstance(out, torch.Tensor) and out.dim() == 0
                          else None)
        except Fail:
            values.append(None)
    return values


def diagnose(fn) -> str | None:
    """The classic mistake whose closed forms the learner's loss gives on every probe, or None
    (a correct loss, or a mistake with no signature here)."""
    values = _probe_values(fn)
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    if all(_close(v, correct(*p)) for v, p in zip(values, PROBES)):
        return None
    per_probe = [dict((m, s) for s, m in signatures(*p)) for p in PROBES]
    for _, mistake in signatures(*PROBES[0]):
        if all(_close(v, sig[mistake]) for v, sig in zip(values, per_probe)):
            return mistake
    return None


def right_on_probes(fn) -> bool:
    """Whether the learner's loss gives every probe's closed form (moderate logits)."""
    values = _probe_values(fn)
    return all(v is not None and math.isfinite(v) and _close(v, correct(*p))
               for v, p in zip(values, PROBES))


def _wrong(fn, message, measured, expected) -> Fail:
    """A wrong closed-form value: the probes name the mistake, or the row cannot pin it."""
    mistake = diagnose(fn)
    return Fail(message + ("" if mistake else ", a value no known mistake gives"),
                diagnosis=mistake, hint=HINTS.get(mistake), conclusive=mistake is not None,
                measured=measured, expected=expected)


laws.returns_scalar(checks, loss=lambda fn, a, b: _loss(fn, a, b), show_dtypes=True,
                    hint="sum the pair losses over the matrix and divide by N: one number")
laws.leaves_inputs_unchanged(
    checks, run=_loss, diagnosis=IN_PLACE, hint=_IN_PLACE_HINT,
    inputs=lambda: [(3.0 * _randn(5, 6, seed=800), _randn(5, 6, seed=801) + 1.0,
                     _number(INIT_SCALE), _number(INIT_BIAS)),
                    (_randn(4, 6, seed=802), _randn(4, 6, seed=803), _number(2.0),
                     _number(0.5))])


@checks.add(
    "with logit_scale = 0 every logit is the bias: softplus(-b) + (N - 1) softplus(b)",
    diagnosis="the loss at a scale of 0 is wrong: the bias, the labels or the reduction",
    hint="at a scale of 0 the similarities play no part: every pair, positive or negative, has "
    "the bias as its logit, and the sum over the matrix is divided by the batch size",
)
def scale_zero(fn):
    n, b = 4, INIT_BIAS
    out = _call(fn, *_towers(1.0, n, torch.float32), 0.0, b)
    expected = correct(1.0, 0.0, n, 0.0, b)
    shown = f"softplus(10) + {n - 1} softplus(-10) = {expected:.5f}"
    if laws.non_finite(out):
        mistake = diagnose(fn)
        raise Fail(f"logit_scale = 0 gave {out.item()}", diagnosis=mistake or TEMPERATURE,
                   hint=HINTS.get(mistake or TEMPERATURE), measured=out.item(), expected=shown)
    value = scalar(out).item()
    if not _close(value, expected):
        raise _wrong(fn, f"N = {n} pairs at logit_scale = 0, logit_bias = {b:g} gave {value:.5f}",
                     f"{value:.5f}", shown)
    return f"{value:.5f}"


@checks.add(
    "perfect pairs at SigLIP's start (t = 10, b = -10) give log 2 + (N - 1) softplus(-10)",
    diagnosis="the loss of perfect pairs at the initial scale and bias is wrong",
    hint="with cosine one on the diagonal and zero elsewhere, each positive's logit is the "
    "scale plus the bias and each negative's is the bias alone",
)
def perfect_at_init(fn):
    n = 8
    value = _loss(fn, *_towers(1.0, n, torch.float32)).item()
    expected = correct(1.0, 0.0, n, INIT_SCALE, INIT_BIAS)
    if _close(value, expected):
        return f"{value:.5f}"
    raise _wrong(fn, f"{n} perfect pairs at t = 10, b = -10 gave {value:.5f}", f"{value:.5f}",
                 f"log 2 + {n - 1} softplus(-10) = {expected:.5f}")


@checks.add(
    "the scale multiplies the cosine similarities and the bias is added (perfect and opposite "
    "pairs)",
    diagnosis="the scale or the bias is not applied as t * cos + b",
    hint="every logit is the cosine similarity times logit_scale, plus logit_bias, both used "
    "as given",
)
def scale_and_bias(fn):
    for (d, o, n, t, b), value in zip(PROBES, _probe_values(fn)):
        expected = correct(d, o, n, t, b)
        kind = "perfect" if d > 0 else "opposite"
        if value is None or not math.isfinite(value) or not _close(value, expected):
            shown = "no number" if value is None else f"{value:.5f}"
            raise _wrong(fn, f"{n} {kind} pairs (float64) at t = {t:g}, b = {b:g} gave {shown}",
                         shown, f"{expected:.5f}")
    return "t * cos + b on every probe"


def _towers_rescaled(fn, image, text, base):
    changed = [name for name, img, txt in (("image", 3.0 * image, text),
                                           ("text", image, 0.25 * text))
               if not _close(_loss(fn, img, txt).item(), base)]
    if changed:
        which = " and ".join(changed)
        raise Fail(f"multiplying every {which} embedding by a constant changed the loss",
                   diagnosis=None if len(changed) == 2 else
                   f"only one tower is normalised: the {which} embeddings are not L2-normalised",
                   measured="changed", expected=f"{base:.5f} (unchanged)")


laws.invariant_to_rescaling(
    checks, loss=lambda fn, a, b: _loss(fn, a, b), uniform=_towers_rescaled, seeds=(804, 805),
    diagnosis=NOT_NORMALISED,
    hint="normalise each row of both towers' outputs to unit length before the matrix product",
    axis_diagnosis="the embeddings are normalised along the wrong axis: each row (one "
    "embedding, dim=-1) must have unit length, not each column",
    axis_hint="normalise over the feature dimension (the last one), so that each row, one "
    "embedding, has unit length")
laws.invariant_to_reordering(
    checks, seeds=(806, 807, 808), loss=lambda fn, a, b: _loss(fn, a, b),
    mistake=lambda fn: diagnose(fn) or NOT_DIAGONAL, diagnosis=NOT_DIAGONAL)


def _grad_mistake(fn, missing):
    """Why the gradient misses `missing`: a value mistake that leaves an input out (no bias, a
    softmax in which the bias cancels) comes first; else the number that was unwrapped."""
    mistake = diagnose(fn)
    if mistake:
        return mistake
    if missing == ["logit_scale"]:
        return SCALE_AS_NUMBER
    if missing == ["logit_bias"]:
        return BIAS_AS_NUMBER
    return GRAPH_CUT


laws.gradients_reach(
    checks, "gradients reach both towers, the scale and the bias", diagnosis=GRAPH_CUT,
    hint="stay in torch operations from the four inputs to the returned loss",
    loss=lambda fn, *args: _loss(fn, *args),
    leaves=lambda: {"image_emb": _randn(5, 8, seed=809).requires_grad_(True),
                    "text_emb": _randn(5, 8, seed=810).requires_grad_(True),
                    "logit_scale": _number(4.0, grad=True),
                    "logit_bias": _number(-2.0, grad=True)},
    mistake=lambda fn, missing, leaves: (
        _grad_mistake(fn, missing),
        HINTS.get(_grad_mistake(fn, missing),
                  "use the scale and bias tensors themselves in the logits, never their values")),
    says="image, text, scale and bias all receive gradients")


@checks.add(
    "stays finite, and exact, at logits of -110 and +110 (float32)",
    diagnosis=OVERFLOW, hint=OVERFLOW_HINT,
)
def large_logits(fn):
    # Opposite pairs at t = 100, b = -10: every positive has a logit of -110, where the sigmoid
    # is below float32's smallest number. Perfect pairs at t = 100, b = 110: every negative has a
    # logit of +110, where 1 - sigmoid is.
    for d, t, b, what in ((-1.0, 100.0, -10.0, "positives at a logit of -110"),
                          (1.0, 100.0, 110.0, "negatives at a logit of +110")):
        n = 4
        image, text = _towers(d, n, torch.float32)
        text.requires_grad_(True)
        scale, bias = _number(t, grad=True), _number(b, grad=True)
        out = _call(fn, image, text, scale, bias)
        expected = correct(d, 0.0, n, t, b)
        if laws.non_finite(out):
            mistake = diagnose(fn)
            raise Fail(f"{what}: the loss is {out.item()}", diagnosis=mistake,
                       hint=HINTS.get(mistake), measured=out.item(),
                       expected=f"{expected:.4f}")
        value = scalar(out)
        if not _close(value.item(), expected):
            if value.item() < expected and right_on_probes(fn):
                raise Fail(f"{what}: the loss is {value.item():.4f}, less than the pairs cost",
                           diagnosis=CAPPED, hint="let a stable log-sigmoid take the log of "
                           "tiny probabilities: no clamp and no epsilon",
                           measured=f"{value.item():.4f}", expected=f"{expected:.4f}")
            raise _wrong(fn, f"{what}: the loss is {value.item():.4f}", f"{value.item():.4f}",
                         f"{expected:.4f}")
        if value.requires_grad:
            value.backward()
            for name, leaf in (("text_emb", text), ("logit_scale", scale), ("logit_bias", bias)):
                if leaf.grad is not None and not torch.isfinite(leaf.grad).all():
                    raise Fail(f"{what}: the gradient with respect to {name} has NaN or inf")
    return "finite and exact at logits of +-110"


def _float64_wrong(value, expected):
    return Fail(f"a float64 batch is off by more than float64 rounding (by "
                f"{abs(value - expected):.3g}: a float64 loss with a wrong value, not a loss of "
                "precision)", measured=f"{value:.15f}", expected=f"{expected:.15f}",
                conclusive=False)


# The law's rows are equal up to 1e-9 (every cosine 1): at t = 2, b = -1 every logit is 1.
laws.keeps_float64(
    checks, loss=lambda fn, a, b: _loss(fn, a, b, _number(2.0, torch.float64),
                                        _number(-1.0, torch.float64)),
    expected=correct(1.0, 1.0, 5, 2.0, -1.0), wrong_value=_float64_wrong)


@checks.add(
    "works for a batch of one pair (N = 1): softplus(-(t + b))",
    diagnosis=SINGLE_PAIR_BREAKS,
    hint="with one pair the matrix is 1 x 1: a single positive and no negatives",
    crash_means_mistake=True,
)
def single(fn):
    value = _loss(fn, *_towers(1.0, 1, torch.float32), 3.0, -1.0).item()
    expected = correct(1.0, 0.0, 1, 3.0, -1.0)
    if not _close(value, expected):
        mistake = diagnose(fn)
        raise Fail(f"one perfect pair at t = 3, b = -1 gave {value:.5f}", diagnosis=mistake,
                   hint=HINTS.get(mistake), conclusive=mistake is not None,
                   measured=f"{value:.5f}", expected=f"softplus(-2) = {expected:.5f}")
    return f"{value:.5f}"


_NAMES = ("image_emb", "text_emb", "logit_scale", "logit_bias")


def _stored_case(case):
    leaves = {name: torch.tensor(case[name], dtype=torch.float64, requires_grad=True)
              for name in _NAMES}
    return tuple(leaves.values()), leaves


def _where(case):
    return (f"N={len(case['image_emb'])}, t={case['logit_scale']:.4g}, "
            f"b={case['logit_bias']:.4g}")


def _stored_value(case, loss):
    if loss.dtype != torch.float64:
        raise Fail(f"{_where(case)}: float64 inputs gave a {loss.dtype} loss", diagnosis=FLOAT32,
                   measured=loss.dtype, expected="torch.float64")
    laws.check_stored(loss, case["loss"], _where(case))


laws.known_answers(
    checks, cases=lambda: load_cases("siglip_loss"), build=_stored_case, loss=_loss,
    check_value=_stored_value, where=_where,
    missing_mistake=lambda fn, missing, args, case: _grad_mistake(fn, missing),
    hint="if the other checks pass, compare the labels, the bias and the reduction")
