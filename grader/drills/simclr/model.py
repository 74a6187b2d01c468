"""Checks for the class `SimCLRModel` (drill 02, SimCLR): it has `backbone` and `projector`
sub-modules whose every layer is registered and trainable, representation(x) is h = backbone(x)
and forward(x) is z = projector(backbone(x)), the head is non-linear and ends without an
activation, gradients from z reach the backbone, and the model works in float64.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...checks import checklist
from ...inputs import gen as _gen
from ...kit.nets import seeded
from ...sandbox import Fail, call, tensor_out
from ._common import DRILL, _allow_global_rng, _crash_means, _digits

model_checks = checklist("SimCLRModel", drill=DRILL, kind="class", smoke=lambda cls: cls())

# Diagnoses named in more than one place (a later check that sees the same mistake names it in the
# same words, so that one mistake gives one entry in the report; a check that re-labels a crash as
# its own mistake names it with its decorator's words).
_IN_A_LIST = ("layers kept in a Python list (or dict) are invisible to PyTorch (no parameters, "
              "no .to(), no state_dict)")
_NO_BACKBONE_PARAMETERS = ("the backbone has no trainable parameters, so h would be the raw "
                           "pixels")
_FLOAT64 = dict(
    diagnosis="forward creates a float32 tensor (or casts with .float()), so a float64 model "
    "breaks",
    hint="make any tensor created inside forward with the input's dtype",
)


def _frozen(name):
    return (f"the {name} is frozen (requires_grad=False): SimCLR trains the encoder and the head "
            "together")


def _build(cls, seed=0):
    """SimCLRModel() with the default arguments, initialised from a fixed seed."""
    with seeded(seed):
        model = call(cls)
    if not isinstance(model, nn.Module):
        raise Fail(
            f"SimCLRModel() is a {type(model).__name__}, not an nn.Module",
            diagnosis="SimCLRModel does not subclass torch.nn.Module",
            hint="make SimCLRModel a subclass of nn.Module, and initialise the parent class "
            "first in its constructor",
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
            diagnosis=_IN_A_LIST if listed else
            "the encoder f must be stored as `self.backbone` and the head g as `self.projector`",
            hint="wrap each part's layers in an nn.Sequential and store the two as the "
            "model's `backbone` and `projector` attributes",
        )
    return model.backbone, model.projector


def _model(cls, *, train=False):
    """SimCLRModel() from a fixed seed, in train or eval mode, with its backbone and projector."""
    model = _build(cls)
    model = model.train() if train else model.eval()
    return (model, *_parts(model))


def _forward(fn, x, what):
    out = call(fn, x)
    return tensor_out(out, (len(x), None), what)


def _beside_backbone(fn, backbone, what):
    """fn(x), then backbone(x), without gradients, for 6 digits x."""
    x = _digits(6)
    with torch.no_grad():
        return _forward(fn, x, what), _forward(backbone, x, "backbone(x)")


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
                diagnosis=_NO_BACKBONE_PARAMETERS if name == "backbone" else
                "the projection head has no trainable parameters",
                hint="f and g are both small networks with Linear layers",
            )
        if any(id(p) not in registered for p in params):
            raise Fail(f"some {name} parameters are missing from model.parameters()",
                       diagnosis=_IN_A_LIST,
                       hint="use nn.Sequential or nn.ModuleList")
        frozen = sum(not p.requires_grad for p in params)
        if frozen:
            raise Fail(
                f"{frozen} {name} parameter tensor(s) have requires_grad=False",
                diagnosis=_frozen(name),
                hint="do not freeze anything: every parameter of f and g keeps "
                "requires_grad on, so the optimiser trains them all",
            )
    n = sum(p.numel() for p in model.parameters())
    return f"{n:,} trainable parameters"


@model_checks.add(
    "representation(x) is h = backbone(x), one vector per image",
    diagnosis="representation(x) must return the backbone's output h, before the head",
    hint="the representation is the backbone's output alone, with no head applied; flatten "
    "the images inside the backbone",
)
def model_representation(cls):
    model, backbone, projector = _model(cls)
    h, f_x = _beside_backbone(model.representation, backbone, "representation(x)")
    if h.shape == f_x.shape and torch.allclose(h, f_x, atol=1e-6):
        return f"h has shape {tuple(h.shape)}"
    with torch.no_grad():
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
    hint="forward runs the backbone, then feeds its output through the projection head",
)
def model_forward(cls):
    model, backbone, projector = _model(cls)
    z, h = _beside_backbone(model, backbone, "model(x)")
    with torch.no_grad():
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


def _head(cls):
    """The projection head of SimCLRModel() in eval mode, as g(h) without gradients, and points in
    h-space with both signs and a wide spread, to probe the head on its own."""
    _, backbone, projector = _model(cls)
    with torch.no_grad():
        h = _forward(backbone, _digits(2), "backbone(x)")

    def g(inputs):
        with torch.no_grad():
            return _forward(projector, inputs, "projector(h)")

    return g, 2.0 * torch.randn(32, h.shape[1], generator=_gen(9), dtype=h.dtype)


@model_checks.add(
    "the projection head is non-linear",
    diagnosis="the projection head is linear (no activation between its layers): SimCLR's g "
    "is Linear, ReLU, Linear, and a linear head gives a clearly worse representation h",
    hint="put a non-linearity (nn.ReLU) between the head's two Linear layers",
)
def model_head_nonlinear(cls):
    g, h = _head(cls)
    a, b = h[:16], h[16:]
    mixed = g((a + b) / 2)
    halves = g(a) + g(b)
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
    g, h = _head(cls)
    negative = (g(h) < 0).double().mean().item()
    if negative == 0:
        raise Fail("no entry of z is negative, for 32 random inputs to the head",
                   measured="0% negative", expected="about half negative")
    return f"{negative:.0%} of the entries of z are negative"


@model_checks.add(
    "gradients from z reach the backbone",
    diagnosis="the backbone gets no gradient from z: h is detached (or computed under "
    "torch.no_grad()) inside forward, so the encoder never learns",
    hint="do not detach h or use no_grad in forward; gradients must flow from z into f",
)
def model_gradients(cls):
    model, backbone, _ = _model(cls, train=True)
    # A backbone with nothing to train cannot receive a gradient: that is its own mistake, named
    # by the parameters check, not a graph cut in forward.
    params = list(backbone.parameters())
    if not params:
        raise Fail("the backbone has no parameters to receive a gradient",
                   diagnosis=_NO_BACKBONE_PARAMETERS,
                   hint="f and g are both small networks with Linear layers")
    if not any(p.requires_grad for p in params):
        raise Fail("every backbone parameter has requires_grad=False, so none can get a gradient",
                   diagnosis=_frozen("backbone"),
                   hint="do not freeze anything: every parameter of f and g keeps "
                   "requires_grad on, so the optimiser trains them all")
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


@model_checks.add("works in float64 after model.double()", **_FLOAT64)
def model_float64(cls):
    model = _build(cls)
    _parts(model)  # layers that are not sub-modules are not converted by .double()
    model = model.double().eval()
    with _crash_means(_FLOAT64), torch.no_grad():
        z = _forward(model, _digits(4, torch.float64), "model(x) in float64")
        h = _forward(model.representation, _digits(4, torch.float64), "representation(x)")
    if z.dtype != torch.float64 or h.dtype != torch.float64:
        raise Fail(f"float64 gave z {z.dtype}, h {h.dtype}", measured=f"{z.dtype}, {h.dtype}",
                   expected="torch.float64")


# Building an nn.Module (the model under test) and dropout in train mode draw from torch's global
# generator: legitimate for this name. Its checks let the global RNG move (the grader restores it
# afterwards) instead of failing the learner for it.
_allow_global_rng(model_checks)
