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
from ...inputs import gen as _gen
from ...inputs import randn as _randn
from ...sandbox import Fail, scalar
from ._common import CAP, INIT, _match
from ._probes import (
    TOL,
    _call_loss,
    _fail_non_finite_at_cap,
    _grad_mistake,
    _loss,
    _non_finite,
    _scale,
    _scale_probe,
)
from ._signatures import (
    FLOAT32,
    GRAPH_CUT,
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
    probe=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4), torch.tensor(10.0)),
)


@loss_checks.add(
    "returns a scalar tensor",
    diagnosis="the loss is not a single number",
    hint="the loss is one number: the mean over pairs, averaged over the two directions",
)
def loss_returns_scalar(fn):
    image, text = _randn(4, 8, seed=0), _randn(4, 8, seed=1)
    out = _loss(fn, image, text, _scale(INIT))  # not finite here: a -inf in the logits
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
    value = _loss(fn, z, z.clone(), _scale(s)).item()
    expected = math.log(n)
    if _close(value, expected):
        return f"{value:.5f} = log({n})"
    if value < 0:
        raise Fail(f"a collapsed batch gave {value:.5f}", diagnosis=NO_NEGATIVES,
                   hint="each row of the similarity matrix is a classification over all N "
                   "captions: use a cross-entropy with the diagonal as targets",
                   measured=f"{value:.5f}", expected=f"log({n}) = {expected:.5f}")
    mistake = _match(value, _collapsed_signatures(n))
    raise Fail(f"a collapsed batch of N={n} gave {value:.5f}"
               + ("" if mistake else ", a value no known mistake gives"), diagnosis=mistake,
               measured=f"{value:.5f}", expected=f"log({n}) = {expected:.5f}",
               conclusive=mistake is not None)


@loss_checks.add(
    "logit_scale multiplies the cosine similarities",
    diagnosis="the scale is not applied as a multiplier of the cosine similarities",
    hint="logits = logit_scale * cos(image, text); logit_scale is already exp(t), clamped",
)
def loss_scale_multiplies(fn):
    n = 4
    values, mistake = _scale_probe(fn)  # 4 orthonormal pairs (float64) at scales 0.5 and 3
    value, expected = values[3.0], _perfect(3.0, n)
    if mistake == "":
        return f"{value:.5f} at logit_scale = 3"
    # A value that is no known mistake's signature: the cause lies elsewhere (another check).
    raise Fail(f"orthonormal perfect pairs at logit_scale = 3 gave {value:.5f}"
               + ("" if mistake else f" ({values[0.5]:.5f} at 0.5), a value no known mistake "
                  "of the scale gives"), diagnosis=mistake, measured=f"{value:.5f}",
               expected=f"{expected:.5f} = -3 + log(e^3 + {n - 1})",
               conclusive=mistake is not None)


@loss_checks.add(
    "perfect pairs at scale 100 give a loss near 0",
    diagnosis=NOT_DIAGONAL,
    hint="the target for row i is i: torch.arange(N)",
)
def loss_perfect_pairs(fn):
    n, s = 5, CAP
    z = torch.eye(n, 8)
    out = _call_loss(fn, z, z.clone(), _scale(s))
    if _non_finite(out):
        _fail_non_finite_at_cap(fn, z, z.clone(),
                                f"perfect pairs at logit_scale = {s:g} gave {out.item()}",
                                "about 0")
    value = scalar(out).item()
    expected = _perfect(s, n)
    if value <= 1e-4:
        return f"{value:.2e}"
    mistake = _match(value, _perfect_pair_signatures(s, n), rel=1e-3)
    if mistake is None and value > 0 and _wrong_targets({s: value}, n):
        mistake = NOT_DIAGONAL  # k of the 2N rows and columns on target: log(e^s + N-1) - ks/2N
    raise Fail(f"z_image = z_text = orthonormal rows at logit_scale={s:g} gave {value:.4g}"
               + ("" if mistake else ", a value no known mistake gives"),
               diagnosis=mistake, measured=f"{value:.4g}", expected=f"{expected:.2e} (about 0)",
               conclusive=mistake is not None)


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
    if _close(value, expected, **TOL):
        return f"{value:.5f}: image-to-text {i2t:.4f}, text-to-image {t2i:.4f}"
    mistake = NO_NEGATIVES if value < 0 else _match(value, _two_direction_signatures(i2t, t2i),
                                                   **TOL)
    # Neither direction alone, nor their sum: the value is wrong for another reason.
    raise Fail(
        "images e1, e2, e3 with captions e1, e1, e3 (caption 1 repeats caption 0) at "
        f"logit_scale = {s:g}: the two directions differ here"
        + ("" if mistake else f"; {value:.5f} is neither direction alone nor their sum"),
        diagnosis=mistake, measured=f"{value:.5f}",
        expected=f"{expected:.5f} = ({i2t:.5f} image-to-text + {t2i:.5f} text-to-image) / 2",
        conclusive=mistake is not None,
    )


@loss_checks.add(
    "the positive of image i is caption i",
    diagnosis=NOT_DIAGONAL,
    hint="check the target of the first and of the last row by hand: pairs are "
    "(image_emb[i], text_emb[i])",
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
        try:  # targets off the diagonal are named by the logit_scale check's probe
            mistake = _scale_probe(fn)[1]
        except Fail:
            mistake = None
        raise Fail("permuting the pairs changed the loss", measured=f"{a:.5f} vs {b:.5f}",
                   expected="equal", diagnosis=NOT_DIAGONAL if mistake == NOT_DIAGONAL else None)


@loss_checks.add(
    "gradients reach both towers and the logit scale",
    diagnosis=GRAPH_CUT,
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
    if missing:
        mistake = _grad_mistake(fn, missing, image, text, INIT)
        raise Fail(f"no useful gradient reached {' and '.join(missing)}", diagnosis=mistake,
                   hint="multiply the similarity matrix by the logit_scale tensor itself"
                   if mistake == SCALE_AS_NUMBER else None)
    return "image, text and scale all receive gradients"


@loss_checks.add(
    "stays finite at logit_scale = 100 (the cap)",
    diagnosis=OVERFLOW,
    hint=OVERFLOW_HINT,
)
def loss_finite_at_cap(fn):
    image = _randn(8, 16, seed=13)
    text = (image + 0.01 * _randn(8, 16, seed=14)).requires_grad_(True)
    out = _call_loss(fn, image, text, _scale(CAP))
    if _non_finite(out):
        _fail_non_finite_at_cap(fn, image, text, f"the loss is {out.item()} at logit_scale = 100",
                                "a finite number near 0")
    loss = scalar(out)
    if loss.requires_grad:
        loss.backward()
        if not torch.isfinite(text.grad).all():
            raise Fail("the gradient has NaN or inf at logit_scale = 100")
    return f"loss = {loss.item():.4f}"


@loss_checks.add(
    "float64 in, float64 out, to float64 precision",
    diagnosis=FLOAT32,
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
    error = abs(out.item() - math.log(n))
    if error > 1e-12:
        # Off by float32 rounding: computed in float32; off by more: the value itself is wrong.
        raise Fail("a collapsed float64 batch is off by more than float64 rounding" +
                   ("" if error < 1e-5 else f" (by {error:.3g}: a float64 loss with a wrong "
                    "value, not a loss of precision)"),
                   measured=f"{out.item():.15f}", expected=f"{math.log(n):.15f}",
                   conclusive=error < 1e-5)


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
        # It ran: a wrong value, not a crash, so nothing here points at a .squeeze().
        raise Fail("N = 1 should give exactly 0: the only caption is the right one; the code "
                   f"runs but gives {value:.5f}", measured=f"{value:.5f}", expected="0",
                   conclusive=False)


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
        if loss.dtype != torch.float64:
            raise Fail(f"{where}: float64 inputs gave a {loss.dtype} loss", diagnosis=FLOAT32,
                       measured=loss.dtype, expected="torch.float64")
        if abs(loss.item() - case["loss"]) > 1e-8 * max(1.0, abs(case["loss"])):
            # Which mistake gives this value is for the checks above to say.
            raise Fail(f"{where}: wrong value", measured=f"{loss.item():.8f}",
                       expected=f"{case['loss']:.8f}", conclusive=False)
        if not loss.requires_grad:
            raise Fail("the loss does not require grad", diagnosis=GRAPH_CUT)
        loss.backward()
        grads = {"image_emb": image, "text_emb": text, "logit_scale": scale}
        wants = {name: torch.tensor(case[f"grad_{name}"], dtype=torch.float64) for name in grads}
        missing = [name for name, t in grads.items()
                   if (t.grad is None or not t.grad.any()) and wants[name].any()]
        if missing:
            raise Fail(f"{where}: the value is right but no gradient reaches "
                       f"{' and '.join(missing)}",
                       diagnosis=_grad_mistake(fn, missing, image, text, case["logit_scale"]))
        for name, t in grads.items():
            want = wants[name]
            if t.grad is None or not torch.allclose(t.grad, want, rtol=1e-6, atol=1e-9):
                raise Fail(
                    f"{where}: the value is right but the gradient with respect to {name} "
                    "is not",
                    diagnosis="part of the computation is detached or uses a non-differentiable "
                    "step, so the gradient differs even though the value matches",
                )
    return "all stored cases match"
