"""Checks for drill 03 (CLIP, Radford et al. 2021): `clip_loss`, `LogitScale`, `zero_shot_classify`.

As in drill 01, nothing here computes the answer the way a solution would. The checks use inputs
whose correct value has a closed form (collapsed towers, perfect pairs, a batch with a duplicated
caption, N = 1), properties every correct implementation has (symmetry under swapping the towers,
invariance to embedding lengths and to the order of the pairs, gradients), and known answers in
grader/data/clip_loss.json and grader/data/clip_zero_shot.json. Where a wrong value has a
recognisable signature (2 log N, the loss at scale 1/s, the dot-product winner), the failure names
the mistake that produces it.
"""

from __future__ import annotations

import math

import torch

from ..checks import checklist
from ..data import load_cases
from ..inputs import close as _close
from ..inputs import gen as _gen
from ..inputs import randn as _randn
from ..sandbox import Fail, call, scalar

CAP = 100.0
INIT = 1 / 0.07  # CLIP's initial multiplier, 14.2857...


def _match(value, signatures, **tol):
    """The mistake whose signature value equals `value`, or None."""
    for signature, mistake in signatures:
        if math.isfinite(signature) and _close(value, signature, **tol):
            return mistake
    return None


# =================================================================================================
# clip_loss(image_emb, text_emb, logit_scale)
# =================================================================================================

loss_checks = checklist(
    "clip_loss",
    drill="03_clip",
    probe=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4), torch.tensor(10.0)),
)


def _scale(value, dtype=torch.float32, grad=False):
    return torch.tensor(float(value), dtype=dtype, requires_grad=grad)


def _loss(fn, image, text, scale):
    if not isinstance(scale, torch.Tensor):
        scale = _scale(scale, image.dtype)
    return scalar(call(fn, image, text, scale))


def _perfect(s, n):
    """Loss of n perfectly matched, mutually orthogonal pairs at multiplier s (both directions)."""
    return -s + math.log(math.exp(s) + n - 1)


ONE_DIRECTION = (
    "only the image-to-text direction is counted: the text-to-image cross-entropy is missing, "
    "or it was computed on the same, untransposed logits (which just repeats the image-to-text "
    "term); CLIP averages the loss over the rows and over the columns of the N x N matrix"
)
NO_NEGATIVES = (
    "the loss is negative, so there is no softmax over the other captions: only the positive "
    "pairs' similarity is rewarded (no negatives), which a constant embedding can satisfy"
)
NT_XENT_MATRIX = (
    "the NT-Xent 2N x 2N matrix was used: images are compared with images and texts with texts; "
    "CLIP's negatives are only the other modality's items (an N x N image-text matrix)"
)
OVERFLOW = (
    "exp(logits) overflows float32 at scale 100 (e^100 > 3.4e38): the softmax was written by "
    "hand with exp()"
)
OVERFLOW_HINT = "use log-softmax or F.cross_entropy, which subtract the row maximum first"
ONE_SIDED = (
    "the two directions are not weighted equally: one of the two cross-entropies (over the "
    "rows, image-to-text, or over the columns, text-to-image) is missing or counted twice; "
    "CLIP averages the loss over the rows and over the columns of the N x N matrix"
)
NOT_DIAGONAL = (
    "the targets are not the diagonal: image i's positive is caption i (and caption i's is "
    "image i), so the target of row i is i"
)
MASKED_DIAGONAL = (
    "the diagonal is masked as in NT-Xent, but in CLIP the diagonal holds the positives "
    "(image i with its own caption i), so the target logit became -inf"
)


@loss_checks.add(
    "returns a scalar tensor",
    diagnosis="the loss is not a single number",
    hint="the loss is one number: the mean over pairs, averaged over the two directions",
)
def loss_returns_scalar(fn):
    image, text = _randn(4, 8, seed=0), _randn(4, 8, seed=1)
    out = call(fn, image, text, _scale(INIT))
    if isinstance(out, torch.Tensor) and out.dim() == 0 and not torch.isfinite(out):
        raise Fail(
            f"the loss is {out.item()} on a random batch at logit_scale = 14.3, where nothing "
            "can overflow",
            diagnosis="a -inf (or a division by zero) got into the logits: " + MASKED_DIAGONAL,
            hint="do not mask anything: every caption is a candidate and caption i is the target",
            measured=out.item(), expected="a finite number")
    out = scalar(out)
    if out.dtype != torch.float32:
        raise Fail(f"float32 inputs gave a {out.dtype} loss", diagnosis="the dtype changed",
                   measured=out.dtype, expected="torch.float32")
    return f"loss = {out.item():.4f} on a random batch of N=4"


@loss_checks.add(
    "leaves its inputs unchanged",
    diagnosis="an in-place operation modified the caller's tensors",
    hint="normalise into new tensors (x = F.normalize(x, dim=-1)) rather than in place",
)
def loss_inputs_unchanged(fn):
    image, text = _randn(5, 6, seed=2), _randn(5, 6, seed=3)
    _loss(fn, 3.0 * image, text + 1.0, _scale(5.0))  # `call` compares every tensor argument
    _loss(fn, image, text, _scale(INIT))


@loss_checks.add(
    "collapsed towers give exactly log N",
    diagnosis="the loss of a collapsed batch is wrong",
    hint="with every embedding equal, each image sees N equally likely captions (and each "
    "caption N equally likely images)",
)
def loss_collapsed(fn):
    n, s = 4, 10.0
    z = torch.ones(n, 3)
    out = call(fn, z, z.clone(), _scale(s))
    expected = math.log(n)
    if isinstance(out, torch.Tensor) and out.dim() == 0 and not torch.isfinite(out):
        raise Fail(f"a collapsed batch gave {out.item()}", diagnosis=MASKED_DIAGONAL,
                   hint="do not mask anything: the targets are the diagonal entries",
                   measured=out.item(), expected=f"log({n}) = {expected:.5f}")
    value = scalar(out).item()
    if _close(value, expected):
        return f"{value:.5f} = log({n})"
    if value < 0:
        raise Fail(f"a collapsed batch gave {value:.5f}", diagnosis=NO_NEGATIVES,
                   hint="each row of the similarity matrix is a classification over all N "
                   "captions: use a cross-entropy with the diagonal as targets",
                   measured=f"{value:.5f}", expected=f"log({n}) = {expected:.5f}")
    mistake = _match(value, [
        (2 * math.log(n), "the two directions are added instead of averaged"),
        (n * math.log(n), "the per-pair losses are summed instead of averaged"),
        (2 * n * math.log(n), "the per-pair losses are summed, and the two directions added"),
        (math.log(2 * n - 1), NT_XENT_MATRIX),
        (math.log(2 * n), NT_XENT_MATRIX + " (and nothing is masked)"),
        (math.log(n) / 2, "one direction is averaged with zero (a missing term divided by 2)"),
    ])
    raise Fail(f"a collapsed batch of N={n} gave {value:.5f}", diagnosis=mistake,
               measured=f"{value:.5f}", expected=f"log({n}) = {expected:.5f}")


def _wrong_targets(values, n):
    """Whether every loss in `values` ({scale: loss} on n orthonormal perfect pairs) is what
    targets off the diagonal give.

    A row whose target is not its own index scores a 0 logit as the target against one s and
    n - 1 zeros: log(e^s + n - 1); a row whose target is right scores _perfect(s, n), which is s
    less. With k of the 2n rows and columns on target the mean is log(e^s + n - 1) - k s / (2n),
    for the same k at every scale (k = 2n is the correct loss, so it is not a mistake).
    """
    for k in range(2 * n):
        if all(_close(v, math.log(math.exp(s) + n - 1) - k * s / (2 * n), rel=1e-5, abs_=1e-7)
               for s, v in values.items()):
            return True
    return False


@loss_checks.add(
    "logit_scale multiplies the cosine similarities",
    diagnosis="the scale is not applied as a multiplier of the cosine similarities",
    hint="logits = logit_scale * cos(image, text); logit_scale is already exp(t), clamped",
)
def loss_scale_multiplies(fn):
    n = 4
    z = torch.eye(n, 6, dtype=torch.float64)
    values = {s: _loss(fn, z, z.clone(), _scale(s, torch.float64)).item() for s in (0.5, 3.0)}
    value, expected = values[3.0], _perfect(3.0, n)
    if _close(value, expected, rel=1e-5, abs_=1e-7):
        return f"{value:.5f} at logit_scale = 3"
    if _close(values[0.5], value, rel=1e-5, abs_=1e-7):
        mistake = ("the logit_scale argument is ignored (a fixed temperature is used instead), "
                   "so the temperature can never be learned")
    elif _wrong_targets(values, n):
        mistake = NOT_DIAGONAL
    else:
        mistake = _match(value, [
            (_perfect(1 / 3.0, n), "the scale is used as a temperature: the similarities are "
             "divided by logit_scale instead of multiplied (logit_scale is already 1/tau)"),
            (_perfect(math.exp(3.0), n), "logit_scale is exponentiated inside the loss: the "
             "loss receives the multiplier itself (LogitScale() already applied exp)"),
            (_perfect(math.log(3.0), n), "the log of logit_scale is used: the loss receives the "
             "multiplier itself, use it as given"),
            (_perfect(9.0, n), "the scale is applied twice (squared)"),
            (_perfect(1.0, n), "the scale is ignored: the logits are the raw cosine similarities"),
        ], rel=1e-5, abs_=1e-7)
    raise Fail(f"orthonormal perfect pairs at logit_scale = 3 gave {value:.5f}",
               diagnosis=mistake, measured=f"{value:.5f}",
               expected=f"{expected:.5f} = -3 + log(e^3 + {n - 1})")


@loss_checks.add(
    "perfect pairs at scale 100 give a loss near 0",
    diagnosis=NOT_DIAGONAL,
    hint="the target for row i is i: torch.arange(N)",
)
def loss_perfect_pairs(fn):
    n, s = 5, CAP
    z = torch.eye(n, 8)
    out = call(fn, z, z.clone(), _scale(s))
    if isinstance(out, torch.Tensor) and out.dim() == 0 and not torch.isfinite(out):
        raise Fail(f"perfect pairs at logit_scale = {s:g} gave {out.item()}", diagnosis=OVERFLOW,
                   hint=OVERFLOW_HINT, measured=out.item(), expected="about 0")
    value = scalar(out).item()
    expected = _perfect(s, n)
    if value <= 1e-4:
        return f"{value:.2e}"
    mistake = _match(value, [
        (_perfect(1 / s, n), "the scale is used as a temperature: the similarities are divided "
         "by logit_scale instead of multiplied (logit_scale is already 1/tau)"),
        (math.log(n), "the logits do not depend on the similarities (the scale or the "
         "similarity matrix is lost)"),
        (_perfect(1.0, n), "the scale is ignored: the logits are the raw cosine similarities"),
    ], rel=1e-3)
    raise Fail(f"z_image = z_text = orthonormal rows at logit_scale={s:g} gave {value:.4g}",
               diagnosis=mistake, measured=f"{value:.4g}", expected=f"{expected:.2e} (about 0)")


@loss_checks.add(
    "is invariant to rescaling each embedding (cosine similarity)",
    diagnosis="the embeddings are not L2-normalised, so the logits use dot products, "
    "not cosine similarities",
    hint="normalise each row of both towers' outputs to unit length before the matrix product",
)
def loss_scale_invariant(fn):
    image, text = _randn(6, 8, seed=4), _randn(6, 8, seed=5)
    s = _scale(INIT)
    base = _loss(fn, image, text, s).item()
    changed = []
    for name, img, txt in (("image", 3.0 * image, text), ("text", image, 0.25 * text)):
        if not _close(_loss(fn, img, txt, s).item(), base):
            changed.append(name)
    if changed:
        which = " and ".join(changed)
        raise Fail(
            f"multiplying every {which} embedding by a constant changed the loss",
            diagnosis=None if len(changed) == 2 else
            f"only one tower is normalised: the {which} embeddings are not L2-normalised",
            measured="changed", expected=f"{base:.5f} (unchanged)",
        )
    rows = torch.linspace(0.2, 5.0, 6).unsqueeze(1)
    per_row = _loss(fn, rows * image, rows.flip(0) * text, s).item()
    if not _close(per_row, base):
        raise Fail(
            "rescaling individual rows changed the loss (a uniform rescale did not)",
            diagnosis="the embeddings are normalised along the wrong axis: each row (one "
            "embedding, dim=-1) must have unit length, not each column",
            hint="normalise over the feature dimension: dim=-1",
            measured=f"{per_row:.5f}", expected=f"{base:.5f} (unchanged)",
        )
    return f"{base:.5f} before and after rescaling"


@loss_checks.add(
    "is symmetric in swapping the two towers",
    diagnosis=ONE_SIDED,
    hint="compute the cross-entropy of the logits and of the transposed logits, and average",
)
def loss_symmetric(fn):
    image, text = _randn(6, 8, seed=6), _randn(6, 8, seed=7)
    a = _loss(fn, image, text, INIT).item()
    b = _loss(fn, text, image, INIT).item()
    if not _close(a, b):
        # Swapping the towers swaps the two directions, so which one is missing (or doubled)
        # cannot be read off here: the duplicated-caption case of the next check tells them apart.
        raise Fail("swapping image_emb and text_emb changed the loss (the matrix is only "
                   "transposed, so a two-way loss is unchanged)",
                   measured=f"{a:.5f} vs {b:.5f}", expected="equal", conclusive=False)
    return f"{a:.5f} both ways"


def _duplicate_caption_case(s):
    """Three images e1, e2, e3 and captions e1, e1, e3: caption 1 duplicates caption 0.

    Similarity matrix [[1, 1, 0], [0, 0, 0], [0, 0, 1]] times s; the two directions differ.
    """
    rows = [-s + math.log(2 * math.exp(s) + 1), math.log(3), -s + math.log(math.exp(s) + 2)]
    cols = [-s + math.log(math.exp(s) + 2), math.log(math.exp(s) + 2),
            -s + math.log(math.exp(s) + 2)]
    return sum(rows) / 3, sum(cols) / 3


@loss_checks.add(
    "averages the image-to-text and text-to-image cross-entropies",
    diagnosis="the two directions are not averaged",
    hint="loss = (CE over rows + CE over columns) / 2, each a mean over the N pairs",
)
def loss_two_directions(fn):
    s = 2.0
    image = torch.eye(3, 4, dtype=torch.float64)
    text = image[[0, 0, 2]].clone()
    value = _loss(fn, image, text, _scale(s, torch.float64)).item()
    i2t, t2i = _duplicate_caption_case(s)
    expected = (i2t + t2i) / 2
    if _close(value, expected, rel=1e-5, abs_=1e-7):
        return f"{value:.5f}: image-to-text {i2t:.4f}, text-to-image {t2i:.4f}"
    mistake = _match(value, [
        (i2t, ONE_DIRECTION),
        (t2i, "only the text-to-image direction is counted: the image-to-text cross-entropy "
         "(over the rows of the matrix) is missing"),
        (i2t + t2i, "the two directions are added instead of averaged"),
    ], rel=1e-5, abs_=1e-7)
    raise Fail(
        "images e1, e2, e3 with captions e1, e1, e3 (caption 1 repeats caption 0) at "
        f"logit_scale = {s:g}: the two directions differ here",
        diagnosis=mistake, measured=f"{value:.5f}",
        expected=f"{expected:.5f} = ({i2t:.5f} image-to-text + {t2i:.5f} text-to-image) / 2",
    )


@loss_checks.add(
    "the positive of image i is caption i",
    diagnosis="the targets are not the diagonal: pairs are (image_emb[i], text_emb[i])",
    hint="check the target of the first and of the last row by hand",
)
def loss_diagonal_positive(fn):
    n = 6
    image = torch.eye(n, 8)
    matched = _loss(fn, image, image.clone(), 10.0).item()
    shifted = _loss(fn, image, image.roll(1, dims=0), 10.0).item()
    if not matched < shifted - 1.0:
        raise Fail("aligning caption i with image i did not give a lower loss than aligning it "
                   "with image i-1", measured=f"aligned {matched:.3f}, shifted {shifted:.3f}",
                   expected="aligned far below shifted")
    return f"aligned {matched:.3f} < shifted {shifted:.3f}"


@loss_checks.add(
    "is invariant to reordering the pairs",
    diagnosis="the loss depends on the order of the pairs in the batch, so the targets do not "
    "follow the pairs",
    hint="derive the targets from the batch size, not from fixed positions",
)
def loss_permutation_invariant(fn):
    image, text = _randn(7, 8, seed=8), _randn(7, 8, seed=9)
    perm = torch.randperm(7, generator=_gen(10))
    a = _loss(fn, image, text, INIT).item()
    b = _loss(fn, image[perm], text[perm], INIT).item()
    if not _close(a, b):
        raise Fail("permuting the pairs changed the loss", measured=f"{a:.5f} vs {b:.5f}",
                   expected="equal")


@loss_checks.add(
    "gradients reach both towers and the logit scale",
    diagnosis="the gradient is cut: a .detach(), .item(), .numpy() or torch.tensor(...) "
    "re-wrap breaks the graph",
    hint="stay in torch operations from the three inputs to the returned loss",
)
def loss_gradients(fn):
    image = _randn(5, 8, seed=11).requires_grad_(True)
    text = _randn(5, 8, seed=12).requires_grad_(True)
    log_scale = torch.tensor(math.log(INIT), requires_grad=True)  # as LogitScale holds it
    loss = _loss(fn, image, text, log_scale.exp())
    if not loss.requires_grad:
        raise Fail("the returned loss does not require grad")
    loss.backward()
    missing = [name for name, t in (("image_emb", image), ("text_emb", text),
                                    ("logit_scale", log_scale))
               if t.grad is None or not torch.isfinite(t.grad).all() or t.grad.abs().max() == 0]
    if "logit_scale" in missing and len(missing) == 1:
        raise Fail(
            "no gradient reached logit_scale",
            diagnosis="logit_scale is used as a plain number (.item(), float(), or detached), "
            "so the temperature can never be learned",
            hint="multiply the similarity matrix by the logit_scale tensor itself",
        )
    if missing:
        raise Fail(f"no useful gradient reached {' and '.join(missing)}",
                   diagnosis=f"{' and '.join(missing)} is detached: CLIP trains both towers "
                   "(and the temperature) through the loss")
    return "image, text and scale all receive gradients"


@loss_checks.add(
    "stays finite at logit_scale = 100 (the cap)",
    diagnosis=OVERFLOW,
    hint=OVERFLOW_HINT,
)
def loss_finite_at_cap(fn):
    image = _randn(8, 16, seed=13)
    text = (image + 0.01 * _randn(8, 16, seed=14)).requires_grad_(True)
    out = call(fn, image, text, _scale(CAP))
    if isinstance(out, torch.Tensor) and out.dim() == 0 and not torch.isfinite(out):
        raise Fail(f"the loss is {out.item()} at logit_scale = 100", measured=out.item(),
                   expected="a finite number near 0")
    loss = scalar(out)
    if loss.requires_grad:
        loss.backward()
        if not torch.isfinite(text.grad).all():
            raise Fail("the gradient has NaN or inf at logit_scale = 100")
    return f"loss = {loss.item():.4f}"


@loss_checks.add(
    "float64 in, float64 out, to float64 precision",
    diagnosis="the computation drops to float32 somewhere (a .float(), or a float32 tensor "
    "made inside without dtype=)",
    hint="create helper tensors with the inputs' dtype and device",
)
def loss_keeps_float64(fn):
    n = 5
    z = torch.ones(n, 3, dtype=torch.float64)
    z[:, 1] = 1e-9 * torch.arange(n, dtype=torch.float64)  # too small for float32 to see
    out = _loss(fn, z, z.clone(), _scale(INIT, torch.float64))
    if out.dtype != torch.float64:
        raise Fail(f"float64 inputs gave a {out.dtype} loss", measured=out.dtype,
                   expected="torch.float64")
    if abs(out.item() - math.log(n)) > 1e-12:
        raise Fail("a collapsed float64 batch is off by more than float64 rounding",
                   measured=f"{out.item():.15f}", expected=f"{math.log(n):.15f}")


@loss_checks.add(
    "works for a batch of one pair (N = 1)",
    diagnosis="a batch with a single pair breaks the code (a .squeeze(), or a shape assumed "
    "to be larger than 1)",
    hint="with N = 1 the caption is the only candidate, so the loss is exactly 0",
)
def loss_single_pair(fn):
    try:
        value = _loss(fn, _randn(1, 8, seed=15), _randn(1, 8, seed=16), INIT).item()
    except Fail as f:
        if f.diagnosis != "the function crashed on a valid input":
            raise
        raise Fail(f.message) from None  # the check's own diagnosis names the likely cause
    if abs(value) > 1e-5:
        raise Fail("N = 1 should give exactly 0: the only caption is the right one",
                   measured=f"{value:.5f}", expected="0")


@loss_checks.add(
    "matches known answers (values and gradients)",
    diagnosis="the loss differs from the reference on fixed inputs",
    hint="if the other checks pass, compare the scale handling and the reduction",
)
def loss_known_answers(fn):
    for case in load_cases("clip_loss"):
        image = torch.tensor(case["image_emb"], dtype=torch.float64, requires_grad=True)
        text = torch.tensor(case["text_emb"], dtype=torch.float64, requires_grad=True)
        scale = torch.tensor(case["logit_scale"], dtype=torch.float64, requires_grad=True)
        where = f"N={len(case['image_emb'])}, logit_scale={case['logit_scale']:.4g}"
        loss = _loss(fn, image, text, scale)
        if abs(loss.item() - case["loss"]) > 1e-8 * max(1.0, abs(case["loss"])):
            raise Fail(f"{where}: wrong value", measured=f"{loss.item():.8f}",
                       expected=f"{case['loss']:.8f}")
        if not loss.requires_grad:
            raise Fail("the loss does not require grad", diagnosis="the graph is cut")
        loss.backward()
        for name, t in (("image_emb", image), ("text_emb", text), ("logit_scale", scale)):
            want = torch.tensor(case[f"grad_{name}"], dtype=torch.float64)
            if t.grad is None or not torch.allclose(t.grad, want, rtol=1e-6, atol=1e-9):
                raise Fail(
                    f"{where}: the value is right but the gradient with respect to {name} "
                    "is not",
                    diagnosis="part of the computation is detached or uses a non-differentiable "
                    "step, so the gradient differs even though the value matches",
                )
    return "all stored cases match"


# =================================================================================================
# LogitScale: a learnable log(1/tau), forward() -> min(exp(t), 100)
# =================================================================================================

scale_checks = checklist("LogitScale", drill="03_clip", kind="class", probe=lambda cls: cls()())


def _instance(cls, **kwargs):
    """Build the learner's module and call forward() once; returns (module, output tensor)."""
    module = call(cls, **kwargs)
    if not isinstance(module, torch.nn.Module):
        raise Fail(f"LogitScale() built a {type(module).__name__}, not an nn.Module",
                   diagnosis="the class does not subclass nn.Module",
                   hint="class LogitScale(nn.Module): ... and call super().__init__() first")
    return module, _value(module)


def _value(module) -> torch.Tensor:
    out = call(module)
    if not isinstance(out, torch.Tensor):
        raise Fail(
            f"forward() returned a {type(out).__name__}, not a tensor",
            diagnosis="the multiplier left torch (math.exp, .item(), float(), min() on Python "
            "numbers), so no gradient can reach the parameter",
            hint="return a tensor computed from the parameter with torch operations",
        )
    if out.numel() != 1:
        raise Fail(f"forward() returned shape {tuple(out.shape)}; one number was expected",
                   diagnosis="the multiplier is not a single number",
                   measured=tuple(out.shape), expected="()")
    return out


def _parameter(module) -> torch.nn.Parameter:
    params = [p for p in module.parameters() if p.requires_grad]
    if len(params) == 1 and params[0].numel() == 1:
        return params[0]
    if not params:
        buffers = list(module.buffers())
        raise Fail(
            "LogitScale has no learnable parameter",
            diagnosis="the log-scale is " + ("registered as a buffer" if buffers else
                                             "a plain tensor or number") +
            ", not an nn.Parameter, so the optimizer never sees it and the temperature is fixed",
            hint="wrap the initial value in nn.Parameter(...) and assign it to self",
        )
    shapes = ", ".join(str(tuple(p.shape)) for p in params)
    raise Fail(
        f"LogitScale has learnable parameters of shapes {shapes}",
        diagnosis="the temperature is one learnable number: exactly one scalar parameter",
        hint="a single nn.Parameter holding one number (shape ())",
    )


def _set(param, value):
    with torch.no_grad():
        param.fill_(value)


@scale_checks.add(
    "is an nn.Module with exactly one learnable scalar",
    diagnosis="the learnable temperature is not a single nn.Parameter",
    hint="self.<name> = nn.Parameter(torch.tensor(<initial log-scale>))",
)
def scale_one_parameter(cls):
    module, _ = _instance(cls)
    param = _parameter(module)
    return f"one parameter of shape {tuple(param.shape)}"


@scale_checks.add(
    "starts at 1/0.07 = 14.29",
    diagnosis="the initial multiplier is not 1/0.07",
    hint="CLIP initialises the temperature to 0.07, so the multiplier starts at 1/0.07 and "
    "the parameter at log(1/0.07) = 2.659",
)
def scale_initial_value(cls):
    module, out = _instance(cls)
    value = out.item()
    if _close(value, INIT):
        return f"{value:.4f}"
    param = _parameter(module).item()
    tau, log_init = 0.07, math.log(INIT)
    if _close(value, CAP) and _close(param, INIT):
        mistake = ("the parameter was initialised to 1/0.07 and then exponentiated "
                   "(e^14.3 is above the cap): store log(1/0.07)")
    elif _close(value, CAP):
        mistake = ("the multiplier is already at the cap: the scale is exponentiated twice "
                   "(exp(exp(t))), or the clamp sets a minimum of 100 instead of a maximum")
    else:
        mistake = _match(value, [
            (tau, "forward() returns the temperature tau = 0.07, not the multiplier 1/tau"),
            (log_init, "forward() returns the log-scale itself: exponentiate it"),
            (math.exp(tau), "the parameter was initialised to the temperature 0.07 and then "
             "exponentiated: store log(1/0.07)"),
            (1.0, "the parameter was initialised to 0 (so exp gives 1), not log(1/0.07)"),
            (math.exp(1.0), "the parameter was initialised to 1, not log(1/0.07)"),
        ])
    raise Fail(f"LogitScale()() returned {value:.5g}", diagnosis=mistake,
               measured=f"{value:.5g}", expected=f"{INIT:.4f} (= 1/0.07)")


@scale_checks.add(
    "is learnable in log space: the parameter is log(scale)",
    diagnosis="the parameter is not the log of the multiplier",
    hint="keep t = log(1/tau) as the parameter and return exp(t): the scale stays positive "
    "and a gradient step changes it by a factor, not by an amount",
)
def scale_log_space(cls):
    module, out = _instance(cls)
    param = _parameter(module)
    value, p = out.item(), param.item()
    if _close(p, value):
        raise Fail(
            f"the parameter holds {p:.4g}, the multiplier itself",
            diagnosis="the parameter stores the scale itself, not its log: it can step below "
            "zero and its steps are absolute; CLIP learns t = log(1/tau) and uses exp(t)",
            measured=f"parameter {p:.4g}", expected=f"log({value:.4g}) = {math.log(value):.4f}")
    if _close(p, 1 / value):
        raise Fail(
            f"the parameter holds {p:.4g}, the temperature",
            diagnosis="the parameter stores the temperature tau and the multiplier is 1/tau: "
            "learn t = log(1/tau) instead, so tau can never cross zero",
            measured=f"parameter {p:.4g}", expected=f"log({value:.4g}) = {math.log(value):.4f}")
    if _close(p, -math.log(value)):
        raise Fail(
            f"the parameter holds {p:.4g} = log(tau)",
            diagnosis="the parameter stores log(tau) and the multiplier is exp(-t); the drill "
            "(like CLIP and open_clip) stores t = log(1/tau) = +2.659 and returns exp(t)",
            measured=f"parameter {p:.4g}", expected=f"log(1/0.07) = {math.log(INIT):.4f}")
    if not _close(p, math.log(value)):
        raise Fail(f"the parameter holds {p:.4g} while the multiplier is {value:.4g}",
                   measured=f"parameter {p:.4g}",
                   expected=f"log({value:.4g}) = {math.log(value):.4f}")
    for t in (math.log(3.0), -2.0, -30.0):
        _set(param, t)
        got = _value(module).item()
        if not _close(got, math.exp(t), rel=1e-4, abs_=1e-12):
            raise Fail(
                f"with the parameter set to {t:.4g}, forward() returned {got:.4g}",
                diagnosis="forward() does not return exp(parameter) below the cap",
                measured=f"{got:.4g}", expected=f"exp({t:.4g}) = {math.exp(t):.4g}")
    return f"parameter {p:.4f} = log({value:.4f})"


@scale_checks.add(
    "never returns more than 100, however far the parameter moves",
    diagnosis="the multiplier is not clamped at 100: logits can grow without bound and "
    "training becomes unstable (CLIP caps the scale at 100)",
    hint="clamp the multiplier to at most 100 (or, equivalently, t to at most log 100)",
)
def scale_capped(cls):
    module, _ = _instance(cls)
    param = _parameter(module)
    for t in (math.log(CAP) + 0.01, math.log(1000.0), 10.0, 50.0, 1000.0):
        _set(param, t)
        got = _value(module).item()
        if math.isnan(got):
            raise Fail(f"with the parameter at {t:g}, forward() returned nan",
                       diagnosis="exp of a large parameter overflowed and the clamp did not "
                       "catch it (inf * 0, or inf - inf, gives nan)",
                       measured="nan", expected="100")
        if got > CAP * (1 + 1e-5):
            diagnosis = None
            if t < 100 and _close(got, math.exp(t), rel=1e-3):
                diagnosis = ("the multiplier is not clamped (or the log-scale is clamped at 100 "
                             "instead of at log(100) = 4.605): exp(t) grows without bound")
            raise Fail(f"with the parameter at {t:g}, forward() returned {got:.4g}",
                       diagnosis=diagnosis, measured=f"{got:.4g}", expected="at most 100")
        if got < CAP * (1 - 1e-5):
            raise Fail(f"with the parameter at {t:g} (exp = {math.exp(min(t, 700)):.3g}), "
                       f"forward() returned {got:.4g}",
                       diagnosis="the cap is not at 100: beyond log(100) the multiplier "
                       "should be exactly 100",
                       measured=f"{got:.4g}", expected="100")
    return "100 for every parameter value above log(100)"


@scale_checks.add(
    "the clamp keeps the gradient below the cap",
    diagnosis="the clamp kills the gradient below the cap: the multiplier is rebuilt from a "
    "number (.item(), float(), min() on Python numbers, torch.tensor(...)) or detached, so the "
    "temperature can never be learned",
    hint="clamp with a torch operation on the tensor (torch.clamp / .clamp(max=...)), which "
    "passes the gradient through wherever the value is below the cap",
)
def scale_gradient_below_cap(cls):
    module, _ = _instance(cls)
    param = _parameter(module)
    for target in (INIT, 50.0, 99.0):
        _set(param, math.log(target))
        param.grad = None
        out = _value(module)
        if not out.requires_grad:
            raise Fail(f"at a multiplier of {target:g} (below the cap) the output does not "
                       "require grad", measured="no graph", expected=f"d scale / d t = {target:g}")
        out.sum().backward()
        grad = None if param.grad is None else param.grad.item()
        if grad is None or grad == 0 or not math.isfinite(grad):
            raise Fail(f"at a multiplier of {target:g} (below the cap) the gradient with "
                       f"respect to the parameter is {grad}", measured=grad,
                       expected=f"d scale / d t = exp(t) = {target:g}")
        if not _close(grad, target, rel=1e-3):
            raise Fail(f"at a multiplier of {target:g} the gradient is {grad:.4g}",
                       diagnosis="the gradient of the multiplier with respect to its log is not "
                       "the multiplier itself: the scale is not exp(parameter) below the cap",
                       measured=f"{grad:.4g}", expected=f"{target:g}")
    return "d scale / d t = scale at 14.3, 50 and 99"


@scale_checks.add(
    "honours its temperature argument",
    diagnosis="LogitScale(temperature=...) ignores its argument",
    hint="initialise the parameter from the `temperature` argument: log(1 / temperature)",
)
def scale_temperature_argument(cls):
    for tau, expected in ((0.5, 2.0), (0.02, 50.0), (0.001, CAP)):
        _, out = _instance(cls, temperature=tau)
        if not _close(out.item(), expected):
            raise Fail(f"LogitScale(temperature={tau}) starts at {out.item():.4g}",
                       measured=f"{out.item():.4g}",
                       expected=f"{expected:g}" + (" (1/tau is above the cap)"
                                                   if expected == CAP else ""))
    return "temperature 0.5 -> 2, 0.02 -> 50, 0.001 -> 100 (capped)"


@scale_checks.add(
    "moves with the module (.double())",
    diagnosis="the multiplier is built from a tensor that .double()/.to() do not move (a plain "
    "tensor attribute, or a float32 tensor created inside forward)",
    hint="keep every tensor the module uses as an nn.Parameter (or buffer) and compute from it",
)
def scale_follows_module(cls):
    module, _ = _instance(cls)
    module = module.double()
    out = _value(module)
    if out.dtype != torch.float64:
        raise Fail(f"after .double() the multiplier is {out.dtype}", measured=out.dtype,
                   expected="torch.float64")


# =================================================================================================
# zero_shot_classify(image_emb, class_text_emb) -> LongTensor
# =================================================================================================

zs_checks = checklist(
    "zero_shot_classify",
    drill="03_clip",
    probe=lambda fn: fn(torch.eye(2, 4), torch.eye(3, 4)),
)


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def _predict(fn, image, classes):
    """Call the learner's classifier; insist on an int64 index per image."""
    n, c = image.shape[0], classes.shape[0]
    out = call(fn, image, classes)
    if out is None:
        raise Fail("the result is None",
                   diagnosis="the function does not return anything (a missing `return`)")
    if not isinstance(out, torch.Tensor):
        raise Fail(f"the result is a {type(out).__name__}, not a torch.Tensor",
                   diagnosis="the predictions left torch (a list, numpy array or Python int)",
                   hint="return the tensor of indices that argmax gives")
    shape = tuple(out.shape)
    if shape == (n, c):
        raise Fail(f"the result has shape {shape}, one row of scores per image",
                   diagnosis="the similarity matrix (or the probabilities) is returned, not "
                   "the index of the best class",
                   hint="reduce each image's row of scores to the index of its largest entry",
                   measured=shape, expected=f"({n},)")
    if shape == (c,):
        raise Fail(f"the result has shape {shape}: one entry per class",
                   diagnosis="the argmax is taken over the images (dim=0) instead of over the "
                   "classes: that finds the best image for each class",
                   hint="the result has one entry per image: reduce over the class dimension",
                   measured=shape, expected=f"({n},)")
    if shape != (n,):
        raise Fail(f"the result has shape {shape}",
                   diagnosis="a .squeeze() or a reshape removed the batch dimension" if
                   out.numel() == n else "the result has the wrong shape",
                   hint="return exactly one class index per image: shape (N,)",
                   measured=shape, expected=f"({n},)")
    if out.is_floating_point():
        cos = _unit(image.detach()) @ _unit(classes.detach()).T
        best = cos.max(dim=1).values.to(out.dtype)
        values_returned = torch.allclose(out.detach(), best, atol=1e-5)
        raise Fail(
            f"the result has dtype {out.dtype}",
            diagnosis="the maximum similarities are returned instead of their positions "
            "(max(dim=...) gives values and indices)" if values_returned else
            "the indices were converted to floating point",
            hint="return the indices (an int64 LongTensor), which argmax gives directly",
            measured=out.dtype, expected="torch.int64")
    if out.dtype != torch.int64:
        raise Fail(f"the result has dtype {out.dtype}",
                   diagnosis="the indices were converted to another integer type (.int() gives "
                   "int32; a LongTensor is int64)",
                   hint="return argmax's result unchanged: it is already int64",
                   measured=out.dtype, expected="torch.int64")
    if ((out < 0) | (out >= c)).any():
        raise Fail(f"an index is outside 0..{c - 1}: {out.tolist()}",
                   diagnosis="the indices do not count classes from 0",
                   measured=out.tolist(), expected=f"values in 0..{c - 1}")
    return out


@zs_checks.add(
    "returns one int64 class index per image",
    diagnosis="the output is not an int64 tensor of shape (N,)",
    hint="one index per image: the position of the most similar class prompt",
)
def zs_shape_dtype(fn):
    out = _predict(fn, _randn(5, 8, seed=20), _randn(3, 8, seed=21))
    return f"shape {tuple(out.shape)}, {out.dtype}"


@zs_checks.add(
    "leaves its inputs unchanged",
    diagnosis="an in-place operation modified the caller's tensors",
    hint="normalise into new tensors rather than in place",
)
def zs_inputs_unchanged(fn):
    _predict(fn, 4.0 * _randn(4, 6, seed=22), _randn(3, 6, seed=23) + 1.0)


def _norms_case():
    """Images at small angles to one of 4 class directions; the class embeddings have very
    different lengths, so the dot-product and the Euclidean winners differ from the cosine one."""
    d, c = 6, 4
    directions = _unit(_randn(c, d, seed=27, dtype=torch.float64))
    lengths = torch.tensor([20.0, 0.05, 1.0, 3.0], dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 1, 2, 3, 1, 2, 0, 3, 1])
    noise = 0.15 * _randn(len(labels), d, seed=25, dtype=torch.float64)
    image_lengths = torch.tensor([1.0, 0.02, 5.0, 0.3, 8.0, 0.01, 2.0, 0.5, 1.0, 3.0, 0.04,
                                  12.0], dtype=torch.float64)
    images = image_lengths.unsqueeze(1) * _unit(directions[labels] + noise)
    return images, directions * lengths.unsqueeze(1), labels


def _norm_signatures(images, classes):
    dot = images @ classes.T
    cos = _unit(images) @ _unit(classes).T
    col_norm = images @ (classes / classes.norm(dim=0, keepdim=True)).T
    return [
        (dot.argmax(1), "the dot product of unnormalised embeddings is used: a class prompt "
         "with a long embedding wins for most images, whatever their direction"),
        (torch.cdist(images, classes).argmin(1), "the nearest class by Euclidean distance on "
         "unnormalised embeddings is used: the distance mixes length and direction"),
        (cos.argmin(1), "argmin picks the least similar class: the most similar one is wanted"),
        (col_norm.argmax(1), "the class embeddings are normalised along the wrong axis: each "
         "row (one class prompt, dim=-1) must have unit length"),
    ]


@zs_checks.add(
    "picks the class with the highest cosine similarity",
    diagnosis="the predictions are not the most similar class by cosine similarity",
    hint="normalise both sides to unit length, then take the most similar class for each image",
)
def zs_cosine_argmax(fn):
    images, classes, labels = _norms_case()
    out = _predict(fn, images, classes)
    if torch.equal(out, labels):
        return f"{len(labels)} of {len(labels)} images, class prompts of lengths 0.05 to 20"
    wrong = int((out != labels).sum())
    mistake = next((m for sig, m in _norm_signatures(images, classes)
                    if torch.equal(out, sig)), None)
    raise Fail(f"{wrong} of {len(labels)} images got the wrong class (the class prompts have "
               "lengths from 0.05 to 20)", diagnosis=mistake,
               measured=out.tolist(), expected=labels.tolist())


@zs_checks.add(
    "ignores the length of every embedding",
    diagnosis="the prediction depends on embedding lengths: the embeddings are not "
    "L2-normalised before comparing them",
    hint="zero-shot compares directions: normalise images and class prompts to unit length",
)
def zs_length_invariant(fn):
    images, classes = _randn(10, 8, seed=26), _randn(5, 8, seed=27)
    base = _predict(fn, images, classes)
    image_lengths = torch.rand(10, 1, generator=_gen(28)) * 10 + 0.1
    class_lengths = torch.rand(5, 1, generator=_gen(29)) * 10 + 0.1
    moved = _predict(fn, image_lengths * images, class_lengths * classes)
    if not torch.equal(base, moved):
        raise Fail("rescaling the embeddings (directions unchanged) changed the predictions",
                   measured=moved.tolist(), expected=base.tolist())


@zs_checks.add(
    "classifies each image on its own, whatever else is in the batch",
    diagnosis="the prediction for one image depends on the other images in the batch: a softmax "
    "or a normalisation runs over the images (dim=0) instead of over the classes or features",
    hint="each image's scores are one row: normalise each embedding on its own, reduce per row",
)
def zs_batch_independent(fn):
    images, classes = _randn(8, 6, seed=39), _randn(5, 6, seed=40)
    together = _predict(fn, images, classes)
    alone = torch.cat([_predict(fn, images[i:i + 1], classes) for i in range(2)]
                      + [_predict(fn, images[2:5], classes), _predict(fn, images[5:], classes)])
    if not torch.equal(together, alone):
        raise Fail("classifying the images in smaller batches changed their predictions",
                   measured=alone.tolist(), expected=together.tolist())


@zs_checks.add(
    "follows the classes when they are reordered",
    diagnosis="the predicted index does not follow the order of the class prompts",
    hint="the index returned is the row of class_text_emb that matches best",
)
def zs_class_order(fn):
    images, classes = _randn(9, 8, seed=30), _randn(6, 8, seed=31)
    perm = torch.randperm(6, generator=_gen(32))
    base = _predict(fn, images, classes)
    moved = _predict(fn, images, classes[perm])
    if not torch.equal(perm[moved], base):
        raise Fail("permuting the class prompts did not permute the predictions accordingly",
                   measured=perm[moved].tolist(), expected=base.tolist())


@zs_checks.add(
    "works on one image, on float64, and on embeddings that require grad",
    diagnosis="valid inputs of an unusual kind break the function",
    hint="stay in torch: no .numpy(), no .squeeze(), no fixed dtype",
)
def zs_edge_inputs(fn):
    out = _predict(fn, _randn(1, 8, seed=33), _randn(4, 8, seed=34))
    if out.shape != (1,):
        raise Fail("one image gave the wrong shape")
    _predict(fn, _randn(3, 8, seed=35, dtype=torch.float64),
             _randn(4, 8, seed=36, dtype=torch.float64))
    images = _randn(3, 8, seed=37).requires_grad_(True)
    classes = _randn(4, 8, seed=38).requires_grad_(True)
    try:
        _predict(fn, images, classes)
    except Fail as f:
        if "numpy" in f.message.lower() and "requires grad" in f.message.lower():
            raise Fail(f.message,
                       diagnosis="the embeddings are converted with .numpy() while they still "
                       "require grad (an encoder's output usually does)",
                       hint="stay in torch operations (or .detach() before leaving torch)"
                       ) from None
        raise
    return "one image, float64 and grad-tracking inputs all work"


@zs_checks.add(
    "matches known answers",
    diagnosis="the predictions differ from the reference on fixed inputs",
    hint="if the other checks pass, check which dimension the argmax runs over",
)
def zs_known_answers(fn):
    for case in load_cases("clip_zero_shot"):
        images = torch.tensor(case["image_emb"], dtype=torch.float64)
        classes = torch.tensor(case["class_text_emb"], dtype=torch.float64)
        out = _predict(fn, images, classes)
        if out.tolist() != case["labels"]:
            raise Fail(f"{len(images)} images, {len(classes)} classes: wrong predictions",
                       measured=out.tolist(), expected=case["labels"])
    return "all stored cases match"
