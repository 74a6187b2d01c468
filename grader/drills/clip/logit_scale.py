"""Checks for `LogitScale` (drill 03): an nn.Module holding one learnable scalar t = log(1/tau),
initialised from the temperature (0.07 by default), whose forward() returns min(exp(t), 100);
checked for the parameter, the initial value, log space, the cap, the gradient below the cap, the
temperature argument and .double()."""

from __future__ import annotations

import math

import torch

from ...checks import checklist
from ...inputs import close as _close
from ...kit.lookup import which_mistake
from ...sandbox import Fail, call
from ._common import CAP, INIT

scale_checks = checklist("LogitScale", drill="03_clip", kind="class", smoke=lambda cls: cls()())

# Mistakes more than one check can recognise, named in the same words wherever they are seen.
EXP_TWICE = ("the multiplier is already at the cap because the scale is exponentiated twice "
             "(exp(exp(t))): the parameter is the log-scale, exponentiate it once")
MIN_CLAMP = ("the multiplier is already at the cap because the clamp sets a minimum of 100 "
             "instead of a maximum (clamp(min=...) where clamp(max=...) is meant)")
AT_CAP = ("the multiplier is already at the cap: the scale is exponentiated twice "
          "(exp(exp(t))), or the clamp sets a minimum of 100 instead of a maximum")
UNCLAMPED = ("the multiplier is not clamped (or the log-scale is clamped at 100 instead of at "
             "log(100) = 4.605): exp(t) grows without bound")
GRAD_KILLED = (
    "the clamp kills the gradient below the cap: the multiplier is rebuilt from a number "
    "(.item(), float(), min() on Python numbers, torch.tensor(...)) or detached, so the "
    "temperature can never be learned"
)


def _instance(cls, **kwargs):
    """Build the learner's module and call forward() once; returns (module, output tensor)."""
    module = call(cls, **kwargs)
    if not isinstance(module, torch.nn.Module):
        raise Fail(f"LogitScale() built a {type(module).__name__}, not an nn.Module",
                   diagnosis="the class does not subclass nn.Module",
                   hint="make LogitScale a subclass of nn.Module, and initialise the parent "
                   "class first in its constructor")
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
            hint="wrap the initial value in an nn.Parameter and store it as an attribute of the "
            "module, so that the optimiser sees it",
        )
    shapes = ", ".join(str(tuple(p.shape)) for p in params)
    raise Fail(
        f"LogitScale has learnable parameters of shapes {shapes}",
        diagnosis="the temperature is one learnable number: exactly one scalar parameter",
        hint="a single nn.Parameter holding one number, a 0-dimensional tensor",
    )


def _fresh(cls):
    """A new module, its one learnable parameter, and the multiplier and the parameter value it
    starts at."""
    module, out = _instance(cls)
    param = _parameter(module)
    return module, param, out.item(), param.item()


def _set(param, value):
    with torch.no_grad():
        param.fill_(value)


def _at(module, param, t) -> float:
    """forward() with the parameter set to t."""
    _set(param, t)
    return _value(module).item()


def _capped_mistake(module, param):
    """Why a module whose parameter is right starts at the cap: moved low (t = 0), exp(exp(t))
    gives e and a clamp that is a minimum still gives 100."""
    low = _at(module, param, 0.0)
    if _close(low, CAP):
        return MIN_CLAMP
    return EXP_TWICE if _close(low, math.e) else AT_CAP


@scale_checks.add(
    "is an nn.Module with exactly one learnable scalar",
    diagnosis="the learnable temperature is not a single nn.Parameter",
    hint="register exactly one nn.Parameter on the module, a single number that holds the "
    "initial log-scale, and no other learnable tensor",
)
def scale_one_parameter(cls):
    _, param, _, _ = _fresh(cls)
    return f"one parameter of shape {tuple(param.shape)}"


@scale_checks.add(
    "starts at 1/0.07 = 14.29",
    diagnosis="the initial multiplier is not 1/0.07",
    hint="CLIP initialises the temperature to 0.07, so the multiplier starts at 1/0.07 and "
    "the parameter at the log of that, about 2.659",
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
        mistake = (_capped_mistake(module, _parameter(module)) if _close(param, log_init)
                   else AT_CAP)
    else:
        mistake = which_mistake(value, [
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
    hint="store the log of the multiplier as the parameter and return its exponential: the "
    "scale stays positive and a gradient step changes it by a factor, not by an amount",
)
def scale_log_space(cls):
    module, param, value, p = _fresh(cls)
    if not _close(value, INIT) and not _close(p, math.log(value)):
        # The multiplier does not start at 1/0.07 (the first checks say why), so how the
        # parameter relates to it tells nothing about what the parameter stores.
        raise Fail(f"the parameter holds {p:.4g} while the multiplier starts at {value:.4g}, "
                   "not 1/0.07, so what the parameter stores cannot be read off",
                   measured=f"parameter {p:.4g}", expected=f"log(1/0.07) = {math.log(INIT):.4f}",
                   conclusive=False)
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
    module, param, value, p = _fresh(cls)
    # Setting the parameter to t tests the cap only where the multiplier is exp(parameter).
    log_space = value >= CAP * (1 - 1e-5) or _close(value, math.exp(p))
    for t in (math.log(CAP) + 0.01, math.log(1000.0), 10.0, 50.0, 1000.0):
        _set(param, t)
        got = _value(module).item()
        if math.isnan(got):
            raise Fail(f"with the parameter at {t:g}, forward() returned nan",
                       diagnosis="exp of a large parameter overflowed and the clamp did not "
                       "catch it (inf * 0, or inf - inf, gives nan)",
                       measured="nan", expected="100")
        if CAP * (1 - 1e-5) <= got <= CAP * (1 + 1e-5):
            continue
        if not log_space:
            raise Fail(f"with the parameter at {t:g}, forward() returned {got:.4g}; but the "
                       f"multiplier starts at {value:.4g}, not exp(parameter) = exp({p:.4g}), "
                       "so the parameter is not the log-scale and moving it does not test the cap",
                       measured=f"{got:.4g}", expected="100", conclusive=False)
        if got > CAP:
            diagnosis = None
            if t < 100 and _close(got, math.exp(t), rel=1e-3):
                # Not clamped from above; one that stays at 100 below the cap clamps from below.
                diagnosis = MIN_CLAMP if _close(_at(module, param, 0.0), CAP) else UNCLAMPED
            raise Fail(f"with the parameter at {t:g}, forward() returned {got:.4g}",
                       diagnosis=diagnosis, measured=f"{got:.4g}", expected="at most 100")
        raise Fail(f"with the parameter at {t:g} (exp = {math.exp(min(t, 700)):.3g}), "
                   f"forward() returned {got:.4g}",
                   diagnosis="the cap is not at 100: beyond log(100) the multiplier "
                   "should be exactly 100",
                   measured=f"{got:.4g}", expected="100")
    return "100 for every parameter value above log(100)"


def _gradient_failure(module, param, out, target):
    """The Fail for a multiplier whose gradient with respect to the parameter is not `target`
    (the multiplier exp(t) at t = log(target)), or None."""
    if not out.requires_grad:
        return Fail(f"at a multiplier of {target:g} (below the cap) the output does not "
                    "require grad", measured="no graph", expected=f"d scale / d t = {target:g}")
    out.sum().backward()
    grad = None if param.grad is None else param.grad.item()
    if grad is None or grad == 0 or not math.isfinite(grad):
        return Fail(f"at a multiplier of {target:g} (below the cap) the gradient with "
                    f"respect to the parameter is {grad}", measured=grad,
                    expected=f"d scale / d t = exp(t) = {target:g}")
    if not _close(grad, target, rel=1e-3):
        return Fail(f"at a multiplier of {target:g} the gradient is {grad:.4g}",
                    diagnosis="the gradient of the multiplier with respect to its log is not "
                    "the multiplier itself: the scale is not exp(parameter) below the cap",
                    measured=f"{grad:.4g}", expected=f"{target:g}")
    return None


@scale_checks.add(
    "the clamp keeps the gradient below the cap",
    diagnosis=GRAD_KILLED,
    hint="clamp with a torch operation on the tensor itself (torch.clamp, with an upper bound "
    "only), which passes the gradient through wherever the value is below the cap",
)
def scale_gradient_below_cap(cls):
    module, param, _, _ = _fresh(cls)
    for target in (INIT, 50.0, 99.0):
        _set(param, math.log(target))
        param.grad = None
        out = _value(module)
        failure = _gradient_failure(module, param, out, target)
        if failure is not None and not _close(out.item(), target):
            # The value is wrong already (the first checks say why): its gradient proves nothing.
            raise Fail(f"{failure.message}; but with the parameter at log({target:g}) the "
                       f"multiplier is {out.item():.4g}, not {target:g}, so its gradient cannot "
                       "be judged", measured=failure.measured, expected=failure.expected,
                       conclusive=False)
        if failure is not None:
            raise failure
    return "d scale / d t = scale at 14.3, 50 and 99"


def _state(module, out):
    """The output and every parameter and buffer: what the temperature argument should change."""
    return [out.detach(), *(t.detach() for t in (*module.parameters(), *module.buffers()))]


@scale_checks.add(
    "honours its temperature argument",
    diagnosis="LogitScale(temperature=...) ignores its argument",
    hint="initialise the parameter from the `temperature` argument, as the log of its "
    "reciprocal, not from the default 0.07",
)
def scale_temperature_argument(cls):
    default = _state(*_instance(cls))
    for tau, expected in ((0.5, 2.0), (0.02, 50.0), (0.001, CAP)):
        module, out = _instance(cls, temperature=tau)
        got = out.item()
        if _close(got, expected):
            continue
        state = _state(module, out)
        ignored = len(state) == len(default) and all(
            a.shape == b.shape and torch.equal(a, b) for a, b in zip(state, default))
        uncapped = expected == CAP and _close(got, 1 / tau)
        # Otherwise the argument is used, but turned into the multiplier wrongly: the first
        # checks name how, with the default temperature.
        raise Fail(f"LogitScale(temperature={tau}) starts at {got:.4g}" + (
                   "" if ignored or uncapped else ": the argument changes the module, but the "
                   "multiplier does not start at 1/tau"),
                   diagnosis=UNCLAMPED if uncapped else None, measured=f"{got:.4g}",
                   expected=f"{expected:g}" + (" (1/tau is above the cap)"
                                               if expected == CAP else ""),
                   conclusive=ignored or uncapped)
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
        _parameter(module)  # no parameter at all: a plain tensor attribute, which stays put
        if not out.requires_grad and out.item() < CAP * (1 - 1e-5):
            raise Fail(f"after .double() the multiplier is {out.dtype}, and it does not require "
                       "grad below the cap: it is rebuilt from a number",
                       diagnosis=GRAD_KILLED, measured=out.dtype, expected="torch.float64")
        raise Fail(f"after .double() the multiplier is {out.dtype}", measured=out.dtype,
                   expected="torch.float64")
