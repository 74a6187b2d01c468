"""Checks for drill 02 (SimCLR): `augment`, `SimCLRModel`, `train_simclr`, `linear_probe`.

None of these has one right output, so the checks test what every correct version does: an
augmentation changes an image but keeps it recognisable, a projection head is non-linear, a
training loop feeds the loss two views of the same samples and clears its gradients, a probe
learns from the training set only. To see inside `train_simclr`, the checks hand it a small
network of their own that records what it is given, put an augmentation of their own in place
of the notebook's `augment` (so that no check depends on how strong the learner's augmentation
is: a correct loop must pass with a correct but weak one), and wrap `nt_xent_loss`, for the
length of the call, so every tensor the loss receives can be traced back to the data rows it
came from. Real images (64 handwritten digits) and the known answer for the
probe live in grader/data/simclr_*.json.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import checklist
from ..data import load_cases
from ..inputs import gen as _gen
from ..sandbox import Fail, call, tensor_out

DRILL = "02_simclr"

# The first torch optimiser built in a fresh process imports torch._dynamo: about a second of CPU.
# The first check of a name whose learner code builds an optimiser (train_simclr, linear_probe)
# gets this longer limit; the checks themselves take a few hundredths of a second.
_FIRST_CALL_TIMEOUT = 20.0


def _decode(rows, dtype=torch.float32):
    """Stored images (strings of base-17 pixel values 0..16) as a float tensor scaled to [0, 1]."""
    return torch.tensor([[int(c, 17) for c in row] for row in rows], dtype=dtype) / 16


def _digits(n=64, dtype=torch.float32):
    """n real 8x8 digits, shape (n, 1, 8, 8), values in [0, 1]."""
    rows = load_cases("simclr_digits")[0]["images"][:n]
    return _decode(rows, dtype).view(-1, 1, 8, 8)


def _smooth_images(n, channels, size, seed, dtype=torch.float32):
    """Blurry random images of any size: stand-ins for photos in the size checks."""
    noise = torch.rand(n, channels, size, size, generator=_gen(seed), dtype=dtype)
    return F.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)


def _crashed(exc: Fail, *, diagnosis: str, hint: str) -> Fail:
    """Re-label a crash on an input that has a known, specific pitfall."""
    return Fail(exc.message, diagnosis=diagnosis, hint=hint)


# =================================================================================================
# augment(x, generator=None)
# =================================================================================================

augment_checks = checklist(
    "augment",
    drill=DRILL,
    probe=lambda fn: fn(torch.zeros(2, 1, 8, 8), torch.Generator().manual_seed(0)),
)


_GLOBAL_RNG = dict(
    diagnosis="some random draws ignore the `generator` argument and use torch's global "
    "generator",
    hint="pass generator=generator to every torch.rand / randn / randint / randperm call",
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


@augment_checks.add(
    "returns a new batch of the same shape and dtype",
    diagnosis="the view does not have the shape or dtype of the input batch",
    hint="every augmentation should map an (N, C, H, W) batch to an (N, C, H, W) batch of the "
    "same dtype; create random tensors with dtype=x.dtype",
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
            raise Fail(f"on a batch of shape {shape}: {exc.message}",
                       measured=exc.measured, expected=exc.expected) from None
    return "(3, 3, 12, 12) and (2, 1, 16, 16)"


@augment_checks.add(
    "changes the image",
    diagnosis="augment returns the image unchanged: no augmentation happens",
    hint="apply the random transformations (crop, contrast, noise, dropout) to x",
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
            raise Fail(f"two calls with {label} gave identical views",
                       measured="identical", expected="different views")
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
                   hint="keep the signature augment(x, generator=None)")
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
        raise Fail("eight copies of one image got eight identical views",
                   measured="identical views", expected="different views")
    return "copies of one image get different views"


@augment_checks.add(
    "a view depends only on its own image",
    diagnosis="views mix information across the batch: another image, or a statistic of the "
    "whole batch (its mean, its max), leaks into each view",
    hint="transform each image on its own; a positive pair must come from one image alone",
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


@augment_checks.add(
    "a view stays recognisable: closer to its own image than to the others",
    diagnosis="the augmentation destroys the content: a view is no more like its own image than "
    "like any other, so two views of one image have nothing left to match",
    hint="weaken the strongest transformation (less noise or dropout, a smaller crop range)",
)
def augment_keeps_content(fn):
    x = _digits(64)
    scores = []
    for seed in (7, 8, 9):
        view = _view(fn, x, _gen(seed))
        sim = _shift_tolerant_similarity(view, x)
        own = sim.diag().unsqueeze(1)
        others = sim[~torch.eye(len(x), dtype=torch.bool)].view(len(x), -1)
        scores.append((own > others).double().mean().item())
    score = sum(scores) / len(scores)
    if score < 0.65:
        raise Fail(
            f"a view is more like its own image than like another digit in only {score:.0%} of "
            "comparisons (64 digits, three views each)",
            measured=f"{score:.0%}", expected="at least 65% (50% is chance)",
        )
    return f"a view is closer to its own image than to another digit in {score:.0%} of pairs"


# =================================================================================================
# SimCLRModel
# =================================================================================================

model_checks = checklist("SimCLRModel", drill=DRILL, kind="class", probe=lambda cls: cls())


def _build(cls, seed=0):
    """SimCLRModel() with the default arguments, initialised from a fixed seed."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = call(cls)
    if not isinstance(model, nn.Module):
        raise Fail(
            f"SimCLRModel() is a {type(model).__name__}, not an nn.Module",
            diagnosis="SimCLRModel does not subclass torch.nn.Module",
            hint="class SimCLRModel(nn.Module): ... and call super().__init__() first",
        )
    return model


def _parts(model):
    missing = [name for name in ("backbone", "projector")
               if not isinstance(getattr(model, name, None), nn.Module)]
    if missing:
        kinds = ", ".join(f"{n} is {type(getattr(model, n, None)).__name__}" for n in missing)
        listed = any(isinstance(getattr(model, n, None), (list, tuple)) for n in missing)
        raise Fail(
            f"the model needs nn.Module attributes `backbone` and `projector` ({kinds})",
            diagnosis="layers kept in a Python list are invisible to PyTorch (no parameters, no "
            ".to(), no state_dict)" if listed else
            "the encoder f must be stored as `self.backbone` and the head g as `self.projector`",
            hint="wrap the layers in nn.Sequential and assign it to self.backbone / "
            "self.projector",
        )
    return model.backbone, model.projector


def _forward(fn, x, what):
    out = call(fn, x)
    return tensor_out(out, (len(x), None), what)


@model_checks.add(
    "has `backbone` and `projector` sub-modules",
    diagnosis="the encoder f must be stored as `self.backbone` and the head g as "
    "`self.projector`, both nn.Modules",
    hint="assign two nn.Sequential to self.backbone and self.projector in __init__",
)
def model_parts(cls):
    model = _build(cls)
    backbone, projector = _parts(model)
    return f"backbone: {type(backbone).__name__}, projector: {type(projector).__name__}"


@model_checks.add(
    "every layer is registered and trainable",
    diagnosis="some of the network's weights are not trainable parameters of the model",
    hint="build the layers from nn.Linear etc. inside nn.Sequential; leave requires_grad on",
)
def model_parameters(cls):
    model = _build(cls)
    backbone, projector = _parts(model)
    registered = {id(p) for p in model.parameters()}
    for name, part in (("backbone", backbone), ("projector", projector)):
        params = list(part.parameters())
        if not params:
            raise Fail(
                f"the {name} has no parameters",
                diagnosis="the backbone has no trainable parameters, so h would be the raw "
                "pixels" if name == "backbone" else
                "the projection head has no trainable parameters",
                hint="f and g are both small networks with Linear layers",
            )
        if any(id(p) not in registered for p in params):
            raise Fail(f"some {name} parameters are missing from model.parameters()",
                       diagnosis="layers kept in a Python list or dict are invisible to PyTorch",
                       hint="use nn.Sequential or nn.ModuleList")
        frozen = sum(not p.requires_grad for p in params)
        if frozen:
            raise Fail(
                f"{frozen} {name} parameter tensor(s) have requires_grad=False",
                diagnosis=f"the {name} is frozen (requires_grad=False): SimCLR trains the "
                "encoder and the head together",
                hint="do not freeze anything; the optimiser gets model.parameters()",
            )
    n = sum(p.numel() for p in model.parameters())
    return f"{n:,} trainable parameters"


@model_checks.add(
    "representation(x) is h = backbone(x), one vector per image",
    diagnosis="representation(x) must return the backbone's output h, before the head",
    hint="representation(x) is just self.backbone(x); flatten the images inside the backbone",
)
def model_representation(cls):
    model = _build(cls).eval()
    backbone, projector = _parts(model)
    x = _digits(6)
    with torch.no_grad():
        h = _forward(model.representation, x, "representation(x)")
        f_x = _forward(backbone, x, "backbone(x)")
        if h.shape == f_x.shape and torch.allclose(h, f_x, atol=1e-6):
            return f"h has shape {tuple(h.shape)}"
        g_f_x = call(projector, f_x)
    if isinstance(g_f_x, torch.Tensor) and g_f_x.shape == h.shape and torch.allclose(h, g_f_x):
        raise Fail("representation(x) equals projector(backbone(x))",
                   diagnosis="representation applies the projection head: h is the backbone's "
                   "output, taken before g")
    raise Fail("representation(x) differs from backbone(x)",
               measured=f"shape {tuple(h.shape)}", expected=f"backbone(x), shape "
               f"{tuple(f_x.shape)}")


@model_checks.add(
    "forward(x) is z = projector(backbone(x))",
    diagnosis="forward must apply the backbone and then the projection head",
    hint="forward(x) returns self.projector(self.backbone(x))",
)
def model_forward(cls):
    model = _build(cls).eval()
    backbone, projector = _parts(model)
    x = _digits(6)
    with torch.no_grad():
        z = _forward(model, x, "model(x)")
        h = _forward(backbone, x, "backbone(x)")
        expected = _forward(projector, h, "projector(backbone(x))")
    if z.shape == expected.shape and torch.allclose(z, expected, atol=1e-6):
        return f"z has shape {tuple(z.shape)}"
    if z.shape == h.shape and torch.allclose(z, h, atol=1e-6):
        raise Fail("model(x) equals backbone(x)",
                   diagnosis="forward skips the projection head: the loss must see z = g(h)")
    if z.shape == expected.shape and torch.allclose(z, F.normalize(expected, dim=1), atol=1e-6):
        raise Fail(
            "model(x) equals projector(backbone(x)) normalised to unit length",
            diagnosis="forward normalises z; return g(f(x)) as it is and leave the "
            "normalisation to the loss",
            hint="nt_xent_loss normalises its inputs already",
        )
    raise Fail("model(x) differs from projector(backbone(x))",
               measured=f"shape {tuple(z.shape)}", expected=f"shape {tuple(expected.shape)}")


def _head_inputs(model, backbone):
    """Points in h-space with both signs and a wide spread, to probe the head on its own."""
    with torch.no_grad():
        h = _forward(backbone, _digits(2), "backbone(x)")
    return 2.0 * torch.randn(32, h.shape[1], generator=_gen(9), dtype=h.dtype)


@model_checks.add(
    "the projection head is non-linear",
    diagnosis="the projection head is linear (no activation between its layers): SimCLR's g "
    "is Linear, ReLU, Linear, and a linear head gives a clearly worse representation h",
    hint="put a non-linearity (nn.ReLU) between the head's two Linear layers",
)
def model_head_nonlinear(cls):
    model = _build(cls).eval()
    backbone, projector = _parts(model)
    h = _head_inputs(model, backbone)
    with torch.no_grad():
        a, b = h[:16], h[16:]
        mixed = _forward(projector, (a + b) / 2, "projector(h)")
        halves = (_forward(projector, a, "projector(h)") + _forward(projector, b, "projector(h)"))
    gap = (mixed - halves / 2).abs().max().item()
    scale = halves.abs().max().item() / 2 + 1e-12
    if gap <= 1e-5 * scale:
        raise Fail("g((a + b) / 2) = (g(a) + g(b)) / 2 for every pair tried: g is affine",
                   measured=f"largest difference {gap:.1e}", expected="clearly non-zero")
    return "g((a + b) / 2) differs from (g(a) + g(b)) / 2"


@model_checks.add(
    "z can take any sign (no activation after the head's last layer)",
    diagnosis="the projection head ends with a ReLU (or another non-negative activation): z is "
    "never negative, so no two projections can point apart and every cosine similarity is >= 0",
    hint="end g with a Linear layer; the activation goes only between its layers",
)
def model_head_output(cls):
    model = _build(cls).eval()
    backbone, projector = _parts(model)
    h = _head_inputs(model, backbone)
    with torch.no_grad():
        z = _forward(projector, h, "projector(h)")
    negative = (z < 0).double().mean().item()
    if negative == 0:
        raise Fail("no entry of z is negative, for 32 random inputs to the head",
                   measured="0% negative", expected="about half negative")
    return f"{negative:.0%} of the entries of z are negative"


@model_checks.add(
    "gradients from z reach the backbone",
    diagnosis="the backbone gets no gradient from z: h is detached (or computed under "
    "torch.no_grad()) inside forward, so the encoder never learns",
    hint="do not call .detach() or use no_grad in forward; gradients must flow from z into f",
)
def model_gradients(cls):
    model = _build(cls).train()
    backbone, _ = _parts(model)
    z = _forward(model, _digits(6), "model(x)")
    if not z.requires_grad:
        raise Fail("z does not require grad", diagnosis="forward cuts the graph: z does not "
                   "require grad (a .detach(), torch.no_grad() or .data inside forward)")
    z.square().sum().backward()
    got = [p.grad for p in backbone.parameters() if p.requires_grad]
    if not got or all(g is None or g.abs().max() == 0 for g in got):
        raise Fail("no backbone parameter received a gradient from z",
                   measured="no gradient", expected="a gradient in the backbone")
    return "every layer of f receives a gradient from z"


_FLOAT64 = dict(
    diagnosis="forward creates a float32 tensor (or casts with .float()), so a float64 model "
    "breaks",
    hint="make any tensor created inside forward with the input's dtype",
)


@model_checks.add("works in float64 after model.double()", **_FLOAT64)
def model_float64(cls):
    model = _build(cls).double().eval()
    try:
        with torch.no_grad():
            z = _forward(model, _digits(4, torch.float64), "model(x) in float64")
            h = _forward(model.representation, _digits(4, torch.float64), "representation(x)")
    except Fail as exc:
        if exc.diagnosis == "the function crashed on a valid input":
            raise _crashed(exc, **_FLOAT64) from None
        raise
    if z.dtype != torch.float64 or h.dtype != torch.float64:
        raise Fail(f"float64 gave z {z.dtype}, h {h.dtype}", measured=f"{z.dtype}, {h.dtype}",
                   expected="torch.float64")


# =================================================================================================
# train_simclr(model, data, *, steps, batch_size, temperature, lr, generator=None)
# =================================================================================================


class _Net(nn.Module):
    """A tiny SimCLR-shaped network owned by the grader: h has 24 numbers, z has 12."""

    H_DIM, Z_DIM = 24, 12

    def __init__(self, seed=0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(64, self.H_DIM), nn.ReLU())
            self.projector = nn.Sequential(nn.Linear(self.H_DIM, self.H_DIM), nn.ReLU(),
                                           nn.Linear(self.H_DIM, self.Z_DIM))

    def representation(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.projector(self.backbone(x))

    def snapshot(self):
        return {name: p.detach().clone() for name, p in self.named_parameters()}


def _train_probe(fn):
    # called directly (not through `call`), so that an untouched stub's NotImplementedError
    # reaches ready()
    fn(_Net(), _digits(8), steps=1, batch_size=4, temperature=0.5, lr=0.0, generator=_gen(0))


train_checks = checklist("train_simclr", drill=DRILL, probe=_train_probe)


def _own_augment(x, generator=None):
    """The checks' augmentation, used in place of the notebook's while train_simclr runs: each
    image shifted by up to one pixel each way (zeros come in) plus noise of std 0.1, every draw
    from `generator` (torch's global generator when it is None), as the contract says."""
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    shifts = torch.randint(-1, 2, (n, 2), generator=generator).tolist()
    padded = F.pad(x, (1, 1, 1, 1))
    out = torch.stack([padded[i, ..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
                       for i, (dy, dx) in enumerate(shifts)])
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return out + 0.1 * noise.to(x.device)


_own_augment._grader_owned = True


class _OwnAugment:
    """While active, the learner's namespace holds `augment` = the checks' own augmentation
    (through `wrap`, if given, so a trace can record its calls); restored on exit."""

    def __init__(self, fn, wrap=None):
        self.space = getattr(fn, "__globals__", None)
        self.wrap = wrap
        self.found, self.saved = False, None

    def __enter__(self):
        space = self.space if isinstance(self.space, dict) else {}
        current = space.get("augment")
        self.found = callable(current)
        if self.found and not getattr(current, "_grader_owned", False):
            self.saved = current
            own = self.wrap(_own_augment) if self.wrap else _own_augment
            space["augment"] = own
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            self.space["augment"] = self.saved
        return False

_DEFAULT = object()


class _Trace:
    """While active: the learner's `augment` and `nt_xent_loss` are wrapped to record every call,
    and hooks on the network record every view it sees. Everything is restored on exit."""

    def __init__(self, fn, net):
        self._fn = fn
        self.space = getattr(fn, "__globals__", None)
        self.net = net
        self.augment_calls = []  # (input rows, output rows)
        self.loss_calls = []  # (z1, z2, temperature or _DEFAULT)
        self.passes = []  # one per backbone call: {"view", "h", "z"}
        self.found = {"augment": False, "nt_xent_loss": False}
        self._saved, self._hooks = {}, []

    def __enter__(self):
        space = self.space if isinstance(self.space, dict) else {}
        self._own = _OwnAugment(self._fn, wrap=self._wrap_augment).__enter__()
        self.found["augment"] = self._own.found
        if callable(space.get("nt_xent_loss")):
            self.found["nt_xent_loss"] = True
            self._saved["nt_xent_loss"] = space["nt_xent_loss"]
            space["nt_xent_loss"] = self._wrap_loss(space["nt_xent_loss"])
        self._hooks = [
            self.net.backbone.register_forward_hook(self._on_backbone),
            self.net.projector.register_forward_hook(self._on_projector),
        ]
        return self

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            self.space[name] = original
        self._own.__exit__(*exc)
        for hook in self._hooks:
            hook.remove()
        return False

    def _wrap_augment(self, original):
        def augment(x, *args, **kwargs):
            out = original(x, *args, **kwargs)
            if isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor):
                self.augment_calls.append((x.detach().clone(), out.detach().clone()))
            return out
        augment._grader_owned = True
        return augment

    def _wrap_loss(self, original):
        def nt_xent_loss(z1, z2, *args, **kwargs):
            temperature = args[0] if args else kwargs.get("temperature", _DEFAULT)
            if isinstance(z1, torch.Tensor) and isinstance(z2, torch.Tensor):
                self.loss_calls.append((z1.detach().clone(), z2.detach().clone(), temperature))
            return original(z1, z2, *args, **kwargs)
        return nt_xent_loss

    def _on_backbone(self, module, inputs, output):
        self.passes.append({"view": inputs[0].detach().clone(), "h": output.detach().clone(),
                            "z": None})

    def _on_projector(self, module, inputs, output):
        if self.passes and self.passes[-1]["z"] is None:
            self.passes[-1]["z"] = output.detach().clone()


def _row_keys(t):
    t = t.detach().flatten(1).contiguous().cpu()
    return [row.numpy().tobytes() for row in t]


def _match(query, candidates):
    """For each row of query, (candidate index, row) of a candidate row pointing the same way."""
    q = F.normalize(query.detach().flatten(1).double(), dim=1)
    found = [None] * len(q)
    for k, cand in enumerate(candidates):
        if cand is None or cand.flatten(1).shape[1] != q.shape[1]:
            continue
        c = F.normalize(cand.detach().flatten(1).double(), dim=1)
        best, where = (q @ c.T).max(dim=1)
        for i in range(len(q)):
            if found[i] is None and best[i] > 1 - 1e-6:
                found[i] = (k, where[i].item())
    return found


def _steps(trace, data):
    """For every call of the loss: what each of its two inputs was, traced back to the data.

    Returns a list of dicts with, for view 1 and view 2: "on" ("z", "h" or "?"), "views" (the
    images the network saw, or None), "rows" (data row of every sample, None where unknown),
    "raw" (True where a view is an un-augmented data row).
    """
    data_rows = {key: i for i, key in enumerate(_row_keys(data))}
    augmented = {}
    for x, out in trace.augment_calls:
        if out.shape[:1] == x.shape[:1]:
            for key_in, key_out in zip(_row_keys(x), _row_keys(out), strict=True):
                augmented.setdefault(key_out, key_in)
    zs = [p["z"] for p in trace.passes]
    hs = [p["h"] for p in trace.passes]
    steps = []
    for z1, z2, temperature in trace.loss_calls:
        step = {"temperature": temperature}
        for side, q in (("1", z1), ("2", z2)):
            where = _match(q, zs)
            on = "z"
            if any(w is None for w in where):
                where_h = _match(q, hs)
                if all(w is not None for w in where_h):
                    where, on = where_h, "h"
                else:
                    on = "?"
            if on == "?":
                step[side] = {"on": "?", "views": None, "rows": [None] * len(q), "raw": []}
                continue
            views = torch.stack([trace.passes[k]["view"][r] for k, r in where])
            rows, raw = [], []
            for key in _row_keys(views):
                if key in augmented:
                    rows.append(data_rows.get(augmented[key]))
                    raw.append(False)
                else:
                    rows.append(data_rows.get(key))
                    raw.append(key in data_rows)
            step[side] = {"on": on, "views": views, "rows": rows, "raw": raw}
        steps.append(step)
    return steps


_TRAIN_RNG = dict(
    diagnosis="the generator is not passed on: augment (or the batch sampling) draws from "
    "torch's global generator",
    hint="pass generator to torch.randperm and to both augment calls",
)


def _trainer(fn, net, data, **kwargs):
    before = torch.get_rng_state() if kwargs.get("generator") is not None else None
    with _OwnAugment(fn):
        out = call(fn, net, data, **kwargs)
    if before is not None and not torch.equal(torch.get_rng_state(), before):
        raise Fail("training drew from torch's global generator although it was given one",
                   measured="global generator moved", expected="untouched", **_TRAIN_RNG)
    if isinstance(out, (list, tuple)) and all(isinstance(v, torch.Tensor) for v in out) and out:
        raise Fail(
            "the losses are returned as tensors",
            diagnosis="the list holds loss tensors (each one keeps its whole graph alive); append "
            "loss.item(), a Python float",
            hint="losses.append(loss.item())",
        )
    if isinstance(out, numbers.Real) or (isinstance(out, torch.Tensor) and out.dim() == 0):
        raise Fail("train_simclr returned a single number",
                   diagnosis="returns only the last loss instead of the list of every step's loss",
                   hint="collect loss.item() in a list at every step and return the list")
    if not isinstance(out, (list, tuple)):
        raise Fail(f"train_simclr returned a {type(out).__name__}",
                   diagnosis="the function does not return the list of losses",
                   hint="end with `return losses`")
    return list(out)


_RUN = dict(steps=12, batch_size=16, temperature=0.5, lr=1e-2)


def _traced_run(fn, *, seed=0, **overrides):
    kwargs = {**_RUN, "generator": _gen(seed), **overrides}
    net, data = _Net(seed), _digits(64)
    with _Trace(fn, net) as trace:
        losses = _trainer(fn, net, data, **kwargs)
    return net, data, trace, losses


def _need(trace, name):
    if not trace.found[name]:
        raise Fail(
            f"train_simclr's namespace has no `{name}`",
            diagnosis=f"train_simclr must use the `{name}` function defined in this notebook",
            hint=f"call {name}(...) inside the loop",
        )
    calls = trace.augment_calls if name == "augment" else trace.loss_calls
    if not calls:
        raise Fail(f"train_simclr never called `{name}`",
                   diagnosis=f"the training loop does not call `{name}`",
                   hint="each step: two calls to augment, one to nt_xent_loss")


@train_checks.add(
    "returns one finite loss per step, as Python floats",
    diagnosis="the return value is not the list of every step's loss",
    hint="append loss.item() at every step and return the list",
    timeout=_FIRST_CALL_TIMEOUT,
)
def train_returns(fn):
    _, _, _, losses = _traced_run(fn)
    if len(losses) != _RUN["steps"]:
        raise Fail(f"{_RUN['steps']} steps gave {len(losses)} losses",
                   diagnosis="the number of losses differs from `steps`: the loop runs a "
                   "different number of times, or appends at the wrong place",
                   measured=len(losses), expected=_RUN["steps"])
    bad = [v for v in losses if not isinstance(v, numbers.Real) or isinstance(v, bool)]
    if bad:
        raise Fail(f"the losses include a {type(bad[0]).__name__}",
                   diagnosis="the losses are not Python floats", hint="use loss.item()")
    if not all(math.isfinite(v) for v in losses):
        raise Fail("a loss is NaN or inf", diagnosis="training diverged or the loss is broken")
    return f"{len(losses)} losses, first {losses[0]:.3f}"


@train_checks.add(
    "the loss is computed on z = model(view), not on h",
    diagnosis="the loss is computed on h = f(x) (model.representation) instead of z = g(f(x)): "
    "the projection head never trains",
    hint="feed the loss model(view), i.e. the output of forward",
)
def train_on_projections(fn):
    _, _, trace, _ = _traced_run(fn)
    _need(trace, "nt_xent_loss")
    steps = _steps(trace, _digits(64))
    sides = [s[side]["on"] for s in steps for side in "12"]
    if "h" in sides:
        raise Fail("the tensors given to nt_xent_loss are backbone outputs h",
                   measured="h (24 numbers)", expected="z (12 numbers)")
    if "?" in sides:
        raise Fail(
            "the tensors given to nt_xent_loss are not outputs of the model",
            diagnosis="nt_xent_loss is not given the model's outputs z = model(view)",
            hint="z1 = model(view1), z2 = model(view2), then nt_xent_loss(z1, z2, temperature)",
        )
    return "both inputs of the loss are projections z"


@train_checks.add(
    "the two views are two different augmentations of the same samples",
    diagnosis="the positive pairs are wrong",
    hint="x = a batch of data; view1 = augment(x, g); view2 = augment(x, g): two separate calls "
    "on the same x",
)
def train_two_views(fn):
    _, _, trace, _ = _traced_run(fn)
    _need(trace, "nt_xent_loss")
    steps = _steps(trace, _digits(64))
    for s in steps:
        one, two = s["1"], s["2"]
        if one["views"] is None or two["views"] is None:
            raise Fail("the loss inputs could not be traced to the model's outputs",
                       diagnosis="nt_xent_loss is not given the model's outputs for two views",
                       hint="z1 = model(view1), z2 = model(view2)")
        if all(one["raw"]) and all(two["raw"]):
            raise Fail("the network sees the raw images: no view is augmented",
                       diagnosis="augment is never applied: both 'views' are the un-augmented "
                       "images, so each pair is identical")
        if one["views"].shape == two["views"].shape and torch.equal(one["views"], two["views"]):
            raise Fail(
                "the two inputs of the loss come from one and the same view",
                diagnosis="the same view is used twice: augment is called once and its output "
                "fed to both sides, so each positive pair is identical and the task is trivial",
            )
        if any(one["raw"]) or any(two["raw"]):
            raise Fail(
                "one side of each pair is the un-augmented image",
                diagnosis="one view is the un-augmented image: SimCLR augments both sides "
                "(the pair (x, augment(x)) is easier and teaches less)",
            )
        if None in one["rows"] or None in two["rows"]:
            raise Fail("some views could not be traced back to a data row",
                       diagnosis="the views are not made by calling augment on rows of `data`",
                       hint="index the data, then augment: augment(data[idx], generator)")
        if one["rows"] != two["rows"]:
            if sorted(one["rows"]) == sorted(two["rows"]):
                raise Fail(
                    "the two views hold the same samples, in a different order",
                    diagnosis="the two views are not aligned: row i of the second view is not a "
                    "view of the same sample as row i of the first",
                    hint="make both views from the same batch tensor x, in the same order",
                )
            raise Fail(
                "row i of the two views comes from different samples",
                diagnosis="the views come from different samples: a positive pair must be two "
                "views of one image (draw the batch once, augment it twice)",
            )
    return f"{len(steps)} steps, each with two distinct views of the same samples"


@train_checks.add(
    "clears the gradients at every step",
    diagnosis="zero_grad is missing: gradients accumulate from step to step, so each update "
    "uses the sum of every past gradient",
    hint="call optimizer.zero_grad() before (or right after) each backward()",
)
def train_zero_grad(fn):
    net = _Net(2)
    weight = net.projector[-1].weight
    stale = []

    def on_grad(grad):
        # runs before the new gradient is added to .grad: what is there now is left over
        stale.append(weight.grad is not None and bool(weight.grad.abs().max() > 0))

    handle = weight.register_hook(on_grad)
    try:
        _trainer(fn, net, _digits(64), **{**_RUN, "generator": _gen(2)})
    finally:
        handle.remove()
    if not stale:
        raise Fail("no gradient reached the network", diagnosis="loss.backward() is never called "
                   "(or the loss is not connected to the model)")
    leftovers = sum(stale[1:])
    if leftovers > len(stale[1:]) / 2:
        raise Fail(f"at {leftovers} of {len(stale) - 1} backward passes the previous step's "
                   "gradient was still there", measured=f"{leftovers} stale", expected="0")
    return "the gradient is cleared before every backward pass"


@train_checks.add(
    "passes `temperature` on to the loss",
    diagnosis="the temperature argument is ignored: nt_xent_loss runs with its default",
    hint="nt_xent_loss(z1, z2, temperature)",
)
def train_temperature(fn):
    _, _, trace, _ = _traced_run(fn, steps=3, temperature=0.3)
    _need(trace, "nt_xent_loss")
    used = {("default" if t is _DEFAULT else t) for *_, t in trace.loss_calls}
    if used != {0.3}:
        raise Fail("train_simclr(temperature=0.3) called the loss with temperature "
                   + ", ".join(map(str, used)), measured=used, expected=0.3)
    return "temperature=0.3 reaches the loss"


@train_checks.add(
    "uses the learning rate it is given",
    diagnosis="the lr argument is ignored (a hard-coded learning rate)",
    hint="torch.optim.Adam(model.parameters(), lr=lr)",
)
def train_uses_lr(fn):
    net = _Net(3)
    before = net.snapshot()
    _trainer(fn, net, _digits(64), steps=3, batch_size=16, temperature=0.5, lr=0.0,
             generator=_gen(3))
    after = net.snapshot()
    if any(not torch.equal(before[k], after[k]) for k in before):
        raise Fail("with lr=0 the parameters still changed", measured="changed",
                   expected="unchanged")
    return "lr=0 leaves the network unchanged"


@train_checks.add(
    "draws batch_size distinct samples, a fresh batch at every step",
    diagnosis="the batches are not drawn as they should be",
    hint="idx = torch.randperm(len(data), generator=generator)[:batch_size] at every step",
)
def train_batches(fn):
    _, data, trace, _ = _traced_run(fn)
    _need(trace, "nt_xent_loss")
    steps = _steps(trace, data)
    batches = [s["1"]["rows"] for s in steps if s["1"]["rows"] and None not in s["1"]["rows"]]
    if not batches:
        raise Fail("the loss inputs could not be traced back to rows of the data",
                   diagnosis="the views are not made by calling augment on rows of `data`")
    sizes = sorted({len(b) for b in batches})
    if sizes != [_RUN["batch_size"]]:
        raise Fail(f"batch_size=16 gave batches of {sizes} samples",
                   diagnosis="batch_size is ignored: each step should use batch_size samples",
                   measured=sizes, expected=16)
    repeated = sum(len(set(b)) < len(b) for b in batches)
    if repeated:
        raise Fail(
            f"{repeated} of {len(batches)} batches hold the same image twice",
            diagnosis="the batch is sampled with replacement, so an image can appear twice and "
            "its views then count as negatives of each other (false negatives)",
            hint="sample without replacement: torch.randperm(len(data))[:batch_size]",
        )
    seen = {i for b in batches for i in b}
    if len(seen) <= _RUN["batch_size"]:
        raise Fail(
            f"{len(batches)} steps saw only {len(seen)} of the 64 images",
            diagnosis="the same samples are used at every step (for example data[:batch_size]): "
            "draw a fresh random batch each step",
            measured=f"{len(seen)} images", expected="most of the 64",
        )
    return f"{len(batches)} batches of 16 distinct images; {len(seen)} of 64 images seen"


@train_checks.add(
    "is reproducible with a generator, and draws nothing from the global generator",
    **_TRAIN_RNG,
    rng_allowed=True,  # the check reseeds the global RNG itself, to prove training ignores it
)
def train_reproducible(fn):
    kwargs = dict(steps=6, batch_size=16, temperature=0.5, lr=1e-2)
    torch.manual_seed(11)
    a = _trainer(fn, _Net(4), _digits(64), generator=_gen(4), **kwargs)  # fails if it moves
    torch.manual_seed(12)
    b = _trainer(fn, _Net(4), _digits(64), generator=_gen(4), **kwargs)
    if a != b:
        raise Fail("two runs with the same generator seed gave different losses",
                   measured=f"{a[-1]:.4f} vs {b[-1]:.4f}" if a and b else "different",
                   expected="identical losses")
    return "same seed, same losses; the global generator is untouched"


@train_checks.add(
    "lowers the loss on a small problem",
    diagnosis="the loss does not go down",
    hint="each step: zero the gradients, loss.backward(), optimizer.step()",
)
def train_lowers_loss(fn):
    net = _Net(1)
    before = net.snapshot()
    losses = _trainer(fn, net, _digits(64), steps=40, batch_size=16, temperature=0.5, lr=1e-2,
                      generator=_gen(1))
    if len(losses) < 20 or not all(isinstance(v, numbers.Real) for v in losses):
        raise Fail("expected 40 float losses", diagnosis="the return value is not the list of "
                   "losses (see the first check)")
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    after = net.snapshot()
    if all(torch.equal(before[k], after[k]) for k in before):
        raise Fail(
            "no parameter of the network changed during training",
            diagnosis="the parameters never change: optimizer.step() is missing, the gradients "
            "are cleared between backward() and step(), or the optimiser holds other "
            "parameters than the model's",
            hint="torch.optim.Adam(model.parameters(), lr=lr), and optimizer.step() each step",
            measured=f"{first:.3f} -> {last:.3f}", expected="a falling loss",
        )
    if last > first + 0.01:
        raise Fail(f"the loss rose from {first:.3f} to {last:.3f}",
                   diagnosis="the loss rises: the update goes uphill (the loss negated, or a "
                   "negative learning rate)",
                   measured=f"{first:.3f} -> {last:.3f}", expected="a falling loss")
    if last > first - 0.15:
        # A small fall has many causes (part of the network frozen, a tiny step): the checks
        # after this one can name them, so this one does not claim to.
        raise Fail(f"the loss went from {first:.3f} to only {last:.3f} in 40 steps",
                   measured=f"{first:.3f} -> {last:.3f}", expected="a fall of at least 0.15",
                   conclusive=False)
    return f"mean of the first 5 steps {first:.3f}, of the last 5 {last:.3f}"


@train_checks.add(
    "trains both the backbone and the head",
    diagnosis="only part of the network is trained",
    hint="the optimiser gets model.parameters(); the loss is on z, so gradients reach g and f",
)
def train_both_parts(fn):
    net = _Net(5)
    before = net.snapshot()
    _trainer(fn, net, _digits(64), **{**_RUN, "generator": _gen(5)})
    after = net.snapshot()
    moved = {part: any(not torch.equal(before[k], after[k]) for k in before
                       if k.startswith(part)) for part in ("backbone", "projector")}
    if moved["projector"] and not moved["backbone"]:
        raise Fail("the head changed but the backbone did not",
                   diagnosis="only the head is optimised (the optimiser holds "
                   "model.projector.parameters()), or h is detached: the encoder never learns")
    if moved["backbone"] and not moved["projector"]:
        raise Fail("the backbone changed but the head did not",
                   diagnosis="the head never trains: the loss is computed on h instead of z, or "
                   "the optimiser holds only the backbone's parameters")
    if not any(moved.values()):
        raise Fail("nothing changed", diagnosis="the parameters never change: optimizer.step() "
                   "is missing")
    return "the backbone and the head both changed"


# =================================================================================================
# linear_probe(train_feats, train_labels, test_feats, test_labels)
# =================================================================================================

probe_checks = checklist(
    "linear_probe",
    drill=DRILL,
    probe=lambda fn: fn(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1]),
                        torch.tensor([[0.0, 1.0]]), torch.tensor([0])),
)


def _accuracy(fn, *args, what="the accuracy"):
    # A probe may initialise its classifier from the global generator; starting every call from
    # the same state makes the calls within a check comparable (the state is restored afterwards).
    torch.manual_seed(0)
    out = call(fn, *args)
    if isinstance(out, torch.Tensor):
        raise Fail(
            f"{what} is a tensor",
            diagnosis="the accuracy is returned as a tensor, not a Python float",
            hint="return acc.item() (or float(acc))",
        )
    if not isinstance(out, numbers.Real) or isinstance(out, bool):
        raise Fail(f"{what} is a {type(out).__name__}, not a float",
                   diagnosis="the function does not return the accuracy as a number",
                   hint="return the fraction of test samples classified correctly")
    value = float(out)
    if not math.isfinite(value):
        raise Fail(f"{what} is {value}", diagnosis="the accuracy is not finite")
    if 1 < value <= 100:
        raise Fail(f"{what} is {value:.2f}", measured=f"{value:.2f}", expected="in [0, 1]",
                   diagnosis="the accuracy is a percentage: return a fraction in [0, 1]",
                   hint="drop the * 100")
    if not 0 <= value <= 1:
        raise Fail(f"{what} is {value:.3f}, outside [0, 1]", measured=f"{value:.3f}",
                   expected="in [0, 1]", diagnosis="the value returned is not an accuracy")
    return value


def _clusters(n_per_class, centres, spread, seed, dtype=torch.float32):
    """Gaussian clusters around the given centres; returns (features, labels)."""
    g = _gen(seed)
    centres = torch.as_tensor(centres, dtype=dtype)
    labels = torch.arange(len(centres)).repeat_interleave(n_per_class)
    feats = centres[labels] + spread * torch.randn(len(labels), centres.shape[1], generator=g,
                                                  dtype=dtype)
    return feats, labels


def _separable(seed, dtype=torch.float32):
    centres = 4.0 * torch.eye(3, 6, dtype=dtype)
    train = _clusters(20, centres, 0.5, seed, dtype)
    test = _clusters(30, centres, 0.5, seed + 100, dtype)
    return train, test


@probe_checks.add(
    "returns a float accuracy in [0, 1]",
    diagnosis="the function does not return the test accuracy as a float in [0, 1]",
    hint="return (predictions == test_labels).float().mean().item()",
    timeout=_FIRST_CALL_TIMEOUT,
)
def probe_returns(fn):
    (xtr, ytr), (xte, yte) = _separable(0)
    value = _accuracy(fn, xtr, ytr, xte, yte)
    return f"accuracy {value:.3f}"


@probe_checks.add(
    "reaches about 1.0 on linearly separable features",
    diagnosis="the probe cannot separate linearly separable classes: the classifier is not "
    "trained (enough), or its predictions are not compared with the right labels",
    hint="fit a softmax classifier to convergence (L-BFGS, or a few hundred Adam steps on "
    "standardised features), predict with argmax",
)
def probe_separable(fn):
    accs = []
    for seed, dtype in ((1, torch.float32), (2, torch.float64)):
        (xtr, ytr), (xte, yte) = _separable(seed, dtype)
        accs.append(_accuracy(fn, xtr, ytr, xte, yte))
    if min(accs) >= 0.95:
        return "accuracy " + ", ".join(f"{a:.3f}" for a in accs) + " (float32, float64)"
    if max(accs) <= 0.05:
        raise Fail(
            f"accuracy {accs[0]:.3f} on three well-separated clusters",
            diagnosis="the value returned is the error rate (1 - accuracy), not the accuracy",
            measured=f"{accs[0]:.3f}", expected="about 1.0",
        )
    raise Fail("accuracy " + ", ".join(f"{a:.3f}" for a in accs) + " on three well-separated "
               "clusters (float32, float64)", measured=f"{min(accs):.3f}", expected=">= 0.95")


@probe_checks.add(
    "learns from the training set, not from the test set",
    diagnosis="the classifier is fitted on the test features and labels: the accuracy it reports "
    "is not a test accuracy",
    hint="fit on (train_feats, train_labels) only; use test_labels only to score the predictions",
)
def probe_uses_train(fn):
    # The label depends on the first feature's sign; in the test set the rule is reversed.
    # A probe fitted on the training set must then be wrong on (nearly) every test point.
    g = _gen(3)
    xtr = torch.randn(60, 4, generator=g)
    xte = torch.randn(60, 4, generator=g)
    ytr = (xtr[:, 0] > 0).long()
    same = _accuracy(fn, xtr, ytr, xte, (xte[:, 0] > 0).long())
    flipped = _accuracy(fn, xtr, ytr, xte, (xte[:, 0] <= 0).long())
    if same >= 0.8 and flipped <= 0.2:
        return f"accuracy {same:.2f} with the training rule, {flipped:.2f} with it reversed"
    if same >= 0.8 and flipped >= 0.8:
        raise Fail(
            f"high accuracy both when the test labels follow the training rule ({same:.2f}) and "
            f"when they contradict it ({flipped:.2f})",
            measured=f"{same:.2f} and {flipped:.2f}", expected="high, then near 0",
        )
    if same >= 0.8 and flipped > 0.35:
        raise Fail(
            f"accuracy {flipped:.2f} on test labels that contradict the training set",
            diagnosis="the test labels influence the classifier: it is fitted on the training "
            "and test sets together",
            measured=f"{flipped:.2f}", expected="near 0",
        )
    if same <= 0.2 and flipped >= 0.8:
        raise Fail(f"accuracy {same:.2f} when the test labels follow the training rule",
                   diagnosis="the value returned is the error rate (1 - accuracy)",
                   measured=f"{same:.2f}", expected="near 1")
    raise Fail(f"accuracy {same:.2f} with the training rule, {flipped:.2f} with it reversed",
               diagnosis="the probe does not learn the training set's rule",
               measured=f"{same:.2f} and {flipped:.2f}", expected="near 1, then near 0")


@probe_checks.add(
    "is at chance on random labels",
    diagnosis="the probe scores well above chance on labels that carry no information: it sees "
    "the test labels (fitted on the test set, or on train and test together)",
    hint="the classifier must never see test_labels before predicting",
)
def probe_chance(fn):
    g = _gen(4)
    xtr, xte = torch.randn(200, 40, generator=g), torch.randn(200, 40, generator=g)
    ytr = torch.randint(0, 4, (200,), generator=g)
    yte = torch.randint(0, 4, (200,), generator=g)
    acc = _accuracy(fn, xtr, ytr, xte, yte)
    if acc > 0.4:
        raise Fail(f"accuracy {acc:.2f} with random labels, 4 classes",
                   measured=f"{acc:.2f}", expected="about 0.25")
    return f"accuracy {acc:.2f} (chance 0.25)"


@probe_checks.add(
    "scores each test point on its own (training statistics only)",
    diagnosis="the test features are normalised with the test set's own statistics (or each "
    "prediction depends on the other test points): use the training mean and scale",
    hint="compute mean and std on train_feats only and apply them to both sets",
)
def probe_pointwise(fn):
    centres = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]
    xtr, ytr = _clusters(20, centres, 1.0, 5)
    xa, ya = _clusters(20, centres, 1.0, 6)
    xb, yb = _clusters(20, centres, 1.0, 7)
    xb = xb + 3.0  # a shifted second batch of test points
    acc_a = _accuracy(fn, xtr, ytr, xa, ya)
    acc_b = _accuracy(fn, xtr, ytr, xb, yb)
    acc_ab = _accuracy(fn, xtr, ytr, torch.cat([xa, xb]), torch.cat([ya, yb]))
    pooled = (acc_a * len(ya) + acc_b * len(yb)) / (len(ya) + len(yb))
    if abs(acc_ab - pooled) > 1e-4:  # one test point moves the accuracy by 1/120
        raise Fail(
            "scoring two test sets together gave a different accuracy from scoring them apart",
            measured=f"together {acc_ab:.3f}", expected=f"{pooled:.3f} (the pooled accuracy)",
        )
    return f"together {acc_ab:.3f} = pooled {pooled:.3f}"


@probe_checks.add(
    "does not depend on the features' overall scale",
    diagnosis="the features are not standardised: the result depends on their arbitrary scale "
    "(an encoder's features can be 1,000 times larger or smaller than pixels)",
    hint="centre the features with the training mean and divide by a training standard "
    "deviation before fitting",
)
def probe_scale(fn):
    centres = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    xtr, ytr = _clusters(30, centres, 0.6, 8)
    xte, yte = _clusters(60, centres, 0.6, 9)
    xtr, xte = xtr + 5.0, xte + 5.0  # far from the origin, as ReLU features are
    accs = {s: _accuracy(fn, s * xtr, ytr, s * xte, yte) for s in (1.0, 1e-3, 1e3)}
    text = ", ".join(f"x{s:g}: {a:.3f}" for s, a in accs.items())
    if max(accs.values()) - min(accs.values()) > 0.03:
        raise Fail("rescaling the features changed the accuracy: " + text,
                   measured=text, expected="the same accuracy at every scale")
    return text


_LABELS = dict(
    diagnosis="the class labels are used directly as column indices: map them to 0..C-1 first "
    "and map the predictions back",
    hint="classes = torch.unique(train_labels); fit on the index of each label in classes",
)


@probe_checks.add("handles class labels that are not 0..C-1", **_LABELS)
def probe_labels(fn):
    (xtr, ytr), (xte, yte) = _separable(10)
    names = torch.tensor([3, 7, 9])
    try:
        acc = _accuracy(fn, xtr, names[ytr], xte, names[yte])
    except Fail as exc:
        if exc.diagnosis == "the function crashed on a valid input":
            raise _crashed(exc, **_LABELS) from None
        raise
    if acc < 0.95:
        raise Fail(f"accuracy {acc:.3f} on separable clusters labelled 3, 7 and 9",
                   measured=f"{acc:.3f}", expected=">= 0.95")
    return f"labels 3, 7, 9: accuracy {acc:.3f}"


_FROZEN = dict(
    diagnosis="the probe's training reaches back into the encoder: a linear probe trains a "
    "classifier on frozen features, so detach them first",
    hint="work on train_feats.detach() (and test_feats.detach())",
)


@probe_checks.add("trains only its own classifier: no gradient reaches the features", **_FROZEN)
def probe_frozen(fn):
    (xtr, ytr), (xte, yte) = _separable(11)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = nn.Linear(6, 6)
    ftr, fte = encoder(xtr), encoder(xte)  # features that still carry the encoder's graph
    try:
        _accuracy(fn, ftr, ytr, fte, yte)
    except Fail as exc:
        if exc.diagnosis == "the function crashed on a valid input":
            raise _crashed(exc, **_FROZEN) from None
        raise
    if encoder.weight.grad is not None:
        raise Fail("the encoder that produced the features received a gradient",
                   measured="encoder.weight.grad is set", expected="None")
    return "the encoder is untouched"


@probe_checks.add(
    "matches the reference on real digits (30 labels per class, raw pixels)",
    diagnosis="the probe is clearly weaker than a well-fitted logistic regression on real data: "
    "it is under-fitted, over-regularised, or the features are badly scaled",
    hint="standardise with training statistics, fit to convergence (L-BFGS, or a few hundred "
    "Adam steps), and regularise lightly (a small L2 penalty)",
)
def probe_known_answer(fn):
    case = load_cases("simclr_probe")[0]
    xtr = _decode(case["train_x"], torch.float64) * 16
    xte = _decode(case["test_x"], torch.float64) * 16
    ytr, yte = torch.tensor(case["train_y"]), torch.tensor(case["test_y"])
    acc = _accuracy(fn, xtr, ytr, xte, yte)
    want = case["accuracy"]
    # Sound probes differ here by a few points (per-dimension or global scaling, the L2 penalty,
    # the initialisation): 0.92 to 0.95 where the reference reaches 0.943; an under-fitted one
    # (a single L-BFGS iteration) stays near 0.84.
    floor = want - 0.05
    if acc < floor:
        raise Fail(f"accuracy {acc:.3f} on 300 test digits, from 300 labelled ones",
                   measured=f"{acc:.3f}", expected=f"at least {floor:.3f} (the reference "
                   f"reaches {want:.3f})")
    return f"accuracy {acc:.3f} (reference {want:.3f})"


# Building an nn.Module (the model under test, or a probe's own nn.Linear) and dropout in train
# mode draw from torch's global generator: legitimate for these two names. Their checks let the
# global RNG move (the grader restores it afterwards) instead of failing the learner for it.
for _check in model_checks.checks + probe_checks.checks:
    _check.rng_allowed = True
