"""Checks for `augment(x, generator=None)` (drill 02, SimCLR): the view is a new batch of the
input's shape and dtype for any image size, it changes each image with a transformation of its
own that depends on that image alone, it draws only from the generator it is given (so it is
reproducible), and it keeps each image recognisable: closer to its own image than to the others.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...checks import checklist
from ...inputs import gen as _gen
from ...sandbox import Fail, call, tensor_out
from ._common import DRILL, _digits


def _smooth_images(n, channels, size, seed, dtype=torch.float32):
    """Blurry random images of any size: stand-ins for photos in the size checks."""
    noise = torch.rand(n, channels, size, size, generator=_gen(seed), dtype=dtype)
    return F.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)


augment_checks = checklist(
    "augment",
    drill=DRILL,
    smoke=lambda fn: fn(torch.zeros(2, 1, 8, 8), torch.Generator().manual_seed(0)),
)


# Diagnoses named by more than one check (a later check that sees the same mistake names it in the
# same words, so that one mistake gives one entry in the report).
_UNCHANGED = dict(
    diagnosis="augment returns the image unchanged: no augmentation happens",
    hint="apply the random transformations (crop, contrast, noise, dropout) to x",
)
_MIXES = dict(
    diagnosis="views mix information across the batch: another image, or a statistic of the "
    "whole batch (its mean, its max), leaks into each view",
    hint="transform each image on its own; a positive pair must come from one image alone",
)

_GLOBAL_RNG = dict(
    diagnosis="some random draws ignore the `generator` argument and use torch's global "
    "generator",
    hint="hand the `generator` argument to every random draw you make (rand, randn, randint, "
    "randperm and the like)",
)


def _view(fn, x, generator=None, what="the view"):
    before = torch.get_rng_state() if generator is not None else None
    out = call(fn, x, generator=generator)
    if before is not None and not torch.equal(torch.get_rng_state(), before):
        raise Fail("augment drew from torch's global generator although it was given one",
                   **_GLOBAL_RNG)
    out = tensor_out(out, tuple(x.shape), what)
    if out is x:
        raise Fail(
            "augment returned the very tensor it was given",
            diagnosis="augment returns its input instead of a new, augmented tensor",
            hint="build the view as a new tensor from x; never return x itself",
        )
    return out


def _unchanged(view, x):
    """True when every view equals its image (to a relative change of 1e-6)."""
    return ((view - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).mean().item() < 1e-6


@augment_checks.add(
    "returns a new batch of the same shape and dtype",
    diagnosis="the view does not have the shape or dtype of the input batch",
    hint="every augmentation should map an (N, C, H, W) batch to an (N, C, H, W) batch of the "
    "same dtype; create random tensors in the dtype of x",
)
def augment_shape(fn):
    for dtype in (torch.float32, torch.float64):
        for n in (5, 1):
            x = _digits(n, dtype)
            out = _view(fn, x, _gen(0), f"the view of a ({n}, 1, 8, 8) {dtype} batch")
            if out.dtype != dtype:
                raise Fail(
                    f"a {dtype} batch gave a {out.dtype} view",
                    diagnosis="the view changes dtype: a random tensor or constant is made "
                    "without dtype=x.dtype, or the result is cast with .float()",
                    measured=out.dtype, expected=dtype,
                )
            if not torch.isfinite(out).all():
                raise Fail("the view contains NaN or inf", diagnosis="the view is not finite")
    return "float32 and float64, batches of 5 and of 1"


@augment_checks.add(
    "works for any image size and channel count",
    diagnosis="the image size (8 x 8) or the number of channels is hard-coded",
    hint="read N, C, H, W from x.shape instead of writing 8 or 64",
)
def augment_any_size(fn):
    for shape in ((3, 3, 12, 12), (2, 1, 16, 16)):
        x = _smooth_images(*shape[:3], seed=1)
        try:
            _view(fn, x, _gen(1), f"the view of a {shape} batch")
        except Fail as exc:
            try:  # the same call on 8 x 8 digits: when it fails too, the size is not the cause
                _view(fn, _digits(shape[0]), _gen(1), "the view of 8 x 8 digits")
            except Fail as same:
                raise Fail(f"on a batch of shape {shape}, and on 8 x 8 digits too: {same.message}",
                           diagnosis=same.diagnosis, hint=same.hint, measured=same.measured,
                           expected=same.expected, conclusive=same.conclusive) from None
            raise Fail(f"on a batch of shape {shape}: {exc.message}",
                       measured=exc.measured, expected=exc.expected) from None
    return "(3, 3, 12, 12) and (2, 1, 16, 16)"


@augment_checks.add(
    "changes the image",
    **_UNCHANGED,
)
def augment_changes(fn):
    x = _digits(16)
    out = _view(fn, x, _gen(2))
    change = ((out - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).mean().item()
    if change < 1e-6:
        raise Fail("every view equals its image", measured="identical", expected="a changed view")
    if change < 0.05:
        raise Fail(
            f"a view differs from its image by only {change:.1%} on average",
            diagnosis="the augmentation is too weak to matter: the two views are almost the same "
            "image, so matching them teaches nothing",
            hint="SimCLR relies on strong augmentation; use shifts/crops, not just tiny noise",
            measured=f"{change:.1%}", expected="at least 5%",
        )
    return f"a view differs from its image by {change:.0%} on average"


@augment_checks.add(
    "two calls give two different views",
    diagnosis="every call returns the same view: the randomness is re-seeded (or fixed) inside "
    "augment",
    hint="draw from the generator you are given (or the global one when it is None); never "
    "seed inside augment",
    rng_allowed=True,  # with generator=None, augment legitimately draws from the global RNG
)
def augment_differs(fn):
    x = _digits(8)
    for label, generator in (("one generator", _gen(3)), ("generator=None", None)):
        a = _view(fn, x, generator, "the first view")
        b = _view(fn, x, generator, "the second view")
        if torch.equal(a, b):
            raise Fail(f"two calls with {label} gave identical views"
                       + (", each equal to its image" if _unchanged(a, x) else ""),
                       measured="identical", expected="different views",
                       **(_UNCHANGED if _unchanged(a, x) else {}))
    return "different views with a generator and without one"


@augment_checks.add(
    "is reproducible with a generator, and uses only that generator",
    **_GLOBAL_RNG,
    rng_allowed=True,  # the check reseeds the global RNG itself, to prove the view ignores it
)
def augment_uses_generator(fn):
    x = _digits(8)
    torch.manual_seed(1)
    a = _view(fn, x, _gen(4))  # fails if the global generator moves
    torch.manual_seed(2)
    b = _view(fn, x, _gen(4))
    if not torch.equal(a, b):
        raise Fail("the same generator seed gave different views after the global seed changed",
                   measured="different views", expected="identical views")
    c = call(fn, x, _gen(4))  # positionally, as train_simclr may call it
    if not isinstance(c, torch.Tensor) or not torch.equal(a, c):
        raise Fail("augment(x, g) and augment(x, generator=g) differ",
                   diagnosis="the second positional argument is not the generator",
                   hint="keep the stub's signature: the generator is the second argument, "
                   "and it defaults to None")
    return "same seed, same view; the global generator is not touched"


@augment_checks.add(
    "each image gets its own random transformation",
    diagnosis="one random transformation is shared by the whole batch (the random numbers are "
    "drawn once, not once per image)",
    hint="draw the random parameters with a leading dimension N, one set per image",
)
def augment_per_image(fn):
    x = _digits(1).expand(8, 1, 8, 8).clone()
    out = _view(fn, x, _gen(5))
    spread = (out - out[:1]).abs().flatten(1).amax(dim=1)[1:]
    if (spread < 1e-6).all():
        raise Fail("eight copies of one image got eight identical views"
                   + (", each equal to the image" if _unchanged(out, x) else ""),
                   measured="identical views", expected="different views",
                   **(_UNCHANGED if _unchanged(out, x) else {}))
    return "copies of one image get different views"


@augment_checks.add(
    "a view depends only on its own image",
    **_MIXES,
)
def augment_local(fn):
    x = _digits(8)
    other = x.clone()
    other[1:] = _digits(16)[8:15]
    a = _view(fn, x, _gen(6))
    b = _view(fn, other, _gen(6))
    if not torch.allclose(a[0], b[0], atol=1e-6):
        raise Fail(
            "with the same generator seed, changing images 1..7 changed the view of image 0",
            measured="view of image 0 changed", expected="view of image 0 unchanged",
        )
    return "the view of image 0 ignores the other images"


def _shift_tolerant_similarity(a, b, reach=2):
    """Cosine similarity of every image in a with every image in b, (n, m), forgiving shifts.

    Both are blurred a little and centred; the score of a pair is the best cosine over shifts of
    b by up to `reach` pixels. A crop or a shift then does not count as destroying an image.
    """
    a = F.avg_pool2d(a.double(), 3, stride=1, padding=1)
    b = F.avg_pool2d(b.double(), 3, stride=1, padding=1)
    a = F.normalize((a - a.mean(dim=(1, 2, 3), keepdim=True)).flatten(1), dim=1)
    b = b - b.mean(dim=(1, 2, 3), keepdim=True)
    padded = F.pad(b, (reach, reach, reach, reach))
    height, width = b.shape[2:]
    best = None
    for dy in range(2 * reach + 1):
        for dx in range(2 * reach + 1):
            moved = padded[:, :, dy:dy + height, dx:dx + width].flatten(1)
            sim = a @ F.normalize(moved, dim=1).T
            best = sim if best is None else torch.maximum(best, sim)
    return best


def _recognised(x, views):
    """How often a view (views(generator) for three seeds) is more like its own image than like
    another image of x: 1 when every view is recognisable, about 0.5 when none is."""
    scores = []
    for seed in (7, 8, 9):
        sim = _shift_tolerant_similarity(views(_gen(seed)), x)
        own = sim.diag().unsqueeze(1)
        others = sim[~torch.eye(len(x), dtype=torch.bool)].view(len(x), -1)
        scores.append((own > others).double().mean().item())
    return sum(scores) / len(scores)


@augment_checks.add(
    "a view stays recognisable: closer to its own image than to the others",
    diagnosis="the augmentation destroys the content: a view is no more like its own image than "
    "like any other, so two views of one image have nothing left to match",
    hint="weaken the strongest transformation (less noise or dropout, a smaller crop range)",
)
def augment_keeps_content(fn):
    x = _digits(64)
    score = _recognised(x, lambda g: _view(fn, x, g))
    if score < 0.65:
        message = (f"a view is more like its own image than like another digit in only "
                   f"{score:.0%} of comparisons (64 digits, three views each)")
        # The same images augmented one at a time: when they stay recognisable, the content is
        # lost only through the rest of the batch (a shuffle, a mix), not by the transformation.
        alone = _recognised(x, lambda g: torch.cat([_view(fn, x[i:i + 1], g)
                                                        for i in range(len(x))]))
        raise Fail(
            message + (f", but in {alone:.0%} when each image is augmented on its own"
                       if alone >= 0.65 else ""),
            measured=f"{score:.0%}", expected="at least 65% (50% is chance)",
            **(_MIXES if alone >= 0.65 else {}),
        )
    return f"a view is closer to its own image than to another digit in {score:.0%} of pairs"
