"""Checks for `ensemble_prompts(prompt_emb)` (drill 03, stretch): (C, T, D) prompt embeddings in,
one unit vector per class out, (C, D): each template's embedding normalised, the T averaged, the
mean normalised again. Checked for shape and dtype, unit rows, invariance to template lengths and
order, one template, gradients, and the known answers in grader/data/clip_ensemble.json.

Every failure that a wrong formula explains asks `_mistake`, which runs one telling input (three
classes, four templates of lengths 0.1 to 30) and compares the result with what each classic
mistake gives there, so that one mistake gets one diagnosis whichever check sees it first."""

from __future__ import annotations

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import gen as _gen
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.lookup import which_mistake
from ...kit.mistakes import FLOAT32, FLOAT32_HINT, GRAPH_CUT, call_naming_in_place
from ...sandbox import Fail

ens_checks = checklist(
    "ensemble_prompts",
    drill="03_clip",
    smoke=lambda fn: fn(torch.ones(2, 3, 4)),
)

NOT_PRE_NORMALISED = (
    "the templates are not normalised before averaging: a template whose embedding happens to "
    "be long outweighs the others in the mean"
)
NOT_RENORMALISED = (
    "the mean is not normalised again: the average of unit vectors is shorter than 1 (the more "
    "the templates disagree, the shorter), so the class vectors have different lengths"
)
NOTHING_NORMALISED = (
    "nothing is normalised: the raw embeddings are averaged and returned, so long templates "
    "dominate and the class vectors are not unit length"
)
WRONG_NORM_AXIS = (
    "the embeddings are normalised along the wrong axis: each template's embedding (its D "
    "features, the last dimension) must have unit length, not each feature across templates "
    "or classes"
)
ONE_TEMPLATE = (
    "only one template is used (the first, or the last): the ensemble averages over all T "
    "templates"
)
TEMPLATES_AXIS = (
    "the mean runs over the wrong axis: the templates are dimension 1 of the (C, T, D) input; "
    "averaging over the classes (dim 0) or the features (the last) gives the wrong shape"
)
DETACHED = (
    "the result does not carry gradients back to the prompt embeddings (a .detach(), "
    "torch.no_grad or a re-wrap inside): the ensemble must be differentiable, so that a text "
    "tower can be trained or tuned through it"
)
HINTS = {
    NOT_PRE_NORMALISED: "give every template the same say: bring each template's embedding to "
    "unit length first",
    NOT_RENORMALISED: "a mean of unit vectors is not a unit vector: normalise once more at the end",
    NOTHING_NORMALISED: "normalise twice: each template's embedding, then the class mean",
    WRONG_NORM_AXIS: "normalise over the feature dimension, the last one",
    ONE_TEMPLATE: "average over the whole template dimension",
    TEMPLATES_AXIS: "the template dimension is the middle one: reduce over it and keep classes "
    "and features",
    DETACHED: "stay in differentiable torch operations from input to output",
}


def _unit(x, dim=-1):
    return x / x.norm(dim=dim, keepdim=True)


def _ensemble(fn, prompts):
    """The learner's result as a (C, D) tensor; a wrong shape names the axis mistake."""
    c, t, d = prompts.shape
    out = call_naming_in_place(fn, prompts, hint="normalise into new tensors, never into the "
                               "input itself")
    if out is None:
        raise Fail("the result is None",
                   diagnosis="the function does not return anything (a missing `return`)",
                   hint="end the function by returning the class vectors")
    if not isinstance(out, torch.Tensor):
        raise Fail(f"the result is a {type(out).__name__}, not a torch.Tensor",
                   diagnosis="the result left torch (a list, numpy array or Python number)",
                   hint="return the tensor itself, so that gradients can flow through it")
    if out.is_floating_point() and not torch.isfinite(out.detach()).all():
        raise Fail("the result holds NaN or inf", diagnosis="the computation overflowed or "
                   "divided by zero", hint="look for a division by a norm that can be 0, or "
                   "an exponential of large numbers", measured="not finite", expected="finite")
    shape = tuple(out.shape)
    if shape != (c, d):
        axis = shape in {(t, d), (c, t), (1, c, d), (c, 1, d)}
        raise Fail(f"the result has shape {shape} for a ({c}, {t}, {d}) input",
                   diagnosis=TEMPLATES_AXIS if axis else "the result has the wrong shape",
                   hint=HINTS[TEMPLATES_AXIS], measured=shape, expected=f"({c}, {d})")
    return out


def _telling():
    """Three classes, four templates of lengths 0.1 to 30 (float64): every classic mistake gives
    a different result here."""
    x = _unit(_randn(3, 4, 5, seed=310, dtype=torch.float64))
    lengths = torch.tensor([[0.1, 30.0, 1.0, 3.0], [2.0, 0.5, 12.0, 0.2], [5.0, 1.0, 0.3, 20.0]],
                           dtype=torch.float64).unsqueeze(-1)
    return x * lengths, x


def _signatures(x):
    """What each classic mistake returns on `x`, most specific first."""
    pre = _unit(x)
    return [
        (_unit(x.mean(1)), NOT_PRE_NORMALISED),
        (pre.mean(1), NOT_RENORMALISED),
        (x.mean(1), NOTHING_NORMALISED),
        (_unit(_unit(x, dim=1).mean(1)), WRONG_NORM_AXIS),
        (_unit(_unit(x, dim=0).mean(1)), WRONG_NORM_AXIS),
        (_unit(x, dim=1).mean(1), WRONG_NORM_AXIS),
        (_unit(x[:, 0]), ONE_TEMPLATE),
        (_unit(x[:, -1]), ONE_TEMPLATE),
    ]


def _mistake(fn):
    """The classic mistake whose result the learner's function gives on the telling input, or
    None (right there, or wrong for a reason not recognised)."""
    x, _ = _telling()
    try:
        out = _ensemble(fn, x.clone())
    except Fail as f:
        return f.diagnosis if f.diagnosis in HINTS else None
    return which_mistake(out.detach(), _signatures(x), rel=1e-6, abs_=1e-9)


def _fail(fn, message, **details):
    """The Fail for a wrong result: the classic mistake it is the signature of, or, where none
    matches, a row that follows from the headline."""
    mistake = _mistake(fn)
    raise Fail(message, diagnosis=mistake, hint=HINTS.get(mistake),
               conclusive=mistake is not None, **details)


@ens_checks.add(
    "returns one vector per class, shape (C, D), in the input's dtype",
    diagnosis="the output is not a (C, D) tensor of the input's dtype",
    hint="one vector per class, as long as one embedding: the template dimension is reduced",
)
def ens_shape_dtype(fn):
    out = _ensemble(fn, _randn(4, 3, 6, seed=311))
    if out.dtype != torch.float32:
        raise Fail(f"float32 in, {out.dtype} out", measured=out.dtype, expected="torch.float32")
    out = _ensemble(fn, _randn(2, 5, 3, seed=312, dtype=torch.float64))
    if out.dtype != torch.float64:
        raise Fail(f"float64 in, {out.dtype} out", diagnosis=FLOAT32, hint=FLOAT32_HINT,
                   measured=out.dtype, expected="torch.float64")
    return "(4, 3, 6) -> (4, 6) float32; (2, 5, 3) -> (2, 3) float64"


laws.leaves_inputs_unchanged(
    ens_checks, run=_ensemble, hint="normalise into new tensors rather than in place",
    inputs=lambda: [(3.0 * _randn(3, 4, 5, seed=313),), (_randn(2, 2, 4, seed=314) + 1.0,)])


@ens_checks.add(
    "every class vector has unit length",
    diagnosis="the class vectors are not unit length",
    hint="the result is compared by cosine: each class vector should be a unit vector",
)
def ens_unit_rows(fn):
    x = _randn(5, 4, 6, seed=315, dtype=torch.float64) * 7.0
    out = _ensemble(fn, x)
    norms = out.detach().norm(dim=-1)
    if torch.allclose(norms, torch.ones_like(norms), rtol=0, atol=1e-9):
        return "5 of 5 rows of length 1"
    _fail(fn, "the class vectors have lengths " + ", ".join(f"{v:.3g}" for v in norms.tolist()),
          measured=f"lengths {norms.min().item():.3g} to {norms.max().item():.3g}",
          expected="1 for every row")


@ens_checks.add(
    "gives every template the same weight, whatever the length of its embedding",
    diagnosis=NOT_PRE_NORMALISED,
    hint=HINTS[NOT_PRE_NORMALISED],
)
def ens_length_invariant(fn):
    x, unit = _telling()
    base = _ensemble(fn, unit.clone()).detach()
    moved = _ensemble(fn, x).detach()
    if torch.allclose(base, moved, rtol=1e-6, atol=1e-9):
        return "template lengths 0.1 to 30 leave the class vectors unchanged"
    _fail(fn, "scaling the templates' embeddings (directions unchanged) changed the class vectors",
          measured=f"largest change {(base - moved).abs().max().item():.3g}", expected="0")


@ens_checks.add(
    "uses every template, in any order",
    diagnosis=ONE_TEMPLATE,
    hint=HINTS[ONE_TEMPLATE],
)
def ens_template_order(fn):
    x = _randn(3, 5, 4, seed=316, dtype=torch.float64)
    perm = torch.randperm(5, generator=_gen(317))
    base = _ensemble(fn, x).detach()
    moved = _ensemble(fn, x[:, perm].clone()).detach()
    if not torch.allclose(base, moved, rtol=1e-6, atol=1e-9):
        _fail(fn, "reordering the templates changed the class vectors",
              measured=f"largest change {(base - moved).abs().max().item():.3g}", expected="0")
    perm = torch.randperm(3, generator=_gen(318))
    moved = _ensemble(fn, x[perm].clone()).detach()
    if not torch.allclose(base[perm], moved, rtol=1e-6, atol=1e-9):
        raise Fail("reordering the classes did not reorder the class vectors accordingly",
                   diagnosis="each class vector must come from that class's own templates: "
                   "something mixes the classes",
                   hint="every reduction runs within one class: over its templates, or over "
                   "one embedding's features")
    return "templates and classes reordered: the same vectors, in the classes' order"


@ens_checks.add(
    "one template gives back its own direction",
    diagnosis="with a single template the class vector is not that template's unit vector",
    hint="with one template per class, the ensemble is just that template, normalised",
)
def ens_single_template(fn):
    x = 4.0 * _randn(3, 1, 5, seed=319, dtype=torch.float64)
    out = _ensemble(fn, x).detach()
    if torch.allclose(out, _unit(x[:, 0]), rtol=1e-6, atol=1e-9):
        return "T = 1: the template's own unit vector"
    _fail(fn, "with T = 1 the class vectors are not the templates' unit vectors",
          measured=f"largest difference {(out - _unit(x[:, 0])).abs().max().item():.3g}",
          expected="0")


@ens_checks.add(
    "is differentiable: gradients reach every template",
    diagnosis=DETACHED,
    hint=HINTS[DETACHED],
)
def ens_gradients(fn):
    x = _randn(3, 4, 5, seed=320, dtype=torch.float64).requires_grad_(True)
    out = _ensemble(fn, x)
    if not out.requires_grad:
        raise Fail("the result does not require grad, though its input does",
                   measured="no graph", expected="a result with a gradient to the input")
    weights = _randn(3, 5, seed=321, dtype=torch.float64)
    (out * weights).sum().backward()
    if x.grad is None or not torch.isfinite(x.grad).all():
        raise Fail("no finite gradient reached the prompt embeddings", diagnosis=GRAPH_CUT,
                   measured=None if x.grad is None else "not finite", expected="finite")
    reached = (x.grad.abs().sum(-1) > 0).float().mean().item()
    if reached < 1:
        raise Fail(f"only {reached:.0%} of the templates receive a gradient",
                   diagnosis=_mistake(fn) or "the class vector does not depend on every "
                   "template (a median, a maximum, or one template picked): the ensemble is "
                   "their mean", measured=f"{reached:.0%}",
                   expected="every template")
    return "every template of every class receives a gradient"


@ens_checks.add(
    "matches known answers",
    diagnosis="the class vectors differ from the reference on fixed inputs",
    hint="if the other checks pass, check the order: normalise, average, normalise",
)
def ens_known_answers(fn):
    for case in load_cases("clip_ensemble"):
        x = torch.tensor(case["prompt_emb"], dtype=torch.float64)
        out = _ensemble(fn, x).detach()
        expected = torch.tensor(case["class_emb"], dtype=torch.float64)
        if not torch.allclose(out, expected, rtol=1e-6, atol=1e-9):
            # Which mistake gives these vectors is for the checks above to say.
            raise Fail(f"a {tuple(x.shape)} case: wrong class vectors",
                       measured=f"largest difference {(out - expected).abs().max().item():.3g}",
                       expected="the stored vectors", conclusive=False)
    return "all stored cases match"
