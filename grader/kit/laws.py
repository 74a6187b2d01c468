"""Property laws every loss of the kit obeys, each written once as a check factory.

A factory registers one check on a Checklist. The drill says how to call the learner's function
(`loss(fn, *inputs) -> 0-d tensor`, usually through sandbox.call and sandbox.scalar) and what
the inputs are; the law says what must hold and which mistake a failure points to. A failure
that does not pin its cause is raised non-conclusive, so that it follows from the headline
instead of naming a second mistake.
"""

from __future__ import annotations

import math

import torch

from ..sandbox import Fail, call, scalar

FLOAT32_DIAGNOSIS = ("the computation drops to float32 somewhere (a .float(), or a float32 tensor "
                     "made inside without dtype=)")
FLOAT32_HINT = "create helper tensors with the inputs' dtype and device"


def keeps_float64(checks, *, loss, inputs, expected: float, expected_text: str,
                  title="float64 in, float64 out, to float64 precision"):
    """float64 inputs give a float64 result equal to `expected` to float64 rounding. `inputs()`
    builds float64 inputs whose differences float32 cannot see."""

    @checks.add(title, diagnosis=FLOAT32_DIAGNOSIS, hint=FLOAT32_HINT)
    def keeps_float64_check(fn):
        out = loss(fn, *inputs())
        if out.dtype != torch.float64:
            raise Fail(f"float64 inputs gave a {out.dtype} result", measured=out.dtype,
                       expected="torch.float64")
        if abs(out.item() - expected) > 1e-12 * max(1.0, abs(expected)):
            # The dtype is right, so float32 is not the cause: another check names it.
            raise Fail("float64 inputs, but the value is wrong", measured=f"{out.item():.15f}",
                       expected=f"{expected_text} = {expected:.15f}", conclusive=False)

    return keeps_float64_check


def finite_at_extreme(checks, *, title, args, kwargs=None, grad_of: int, diagnosis, hint,
                      where: str):
    """At an extreme setting (temperature 0.01, scale 100) the value and the gradient with
    respect to `args()[grad_of]` stay finite. `where` names the setting in messages."""

    @checks.add(title, diagnosis=diagnosis, hint=hint)
    def finite_check(fn):
        inputs = list(args())
        inputs[grad_of] = inputs[grad_of].detach().requires_grad_(True)
        out = call(fn, *inputs, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.dim() == 0 and not torch.isfinite(out):
            raise Fail(f"the loss is {out.item()} at {where}", measured=out.item(),
                       expected="a finite number")
        value = scalar(out)
        if value.requires_grad:
            value.backward()
            grad = inputs[grad_of].grad
            if grad is not None and not torch.isfinite(grad).all():
                raise Fail(f"the gradient has NaN or inf at {where}")
        return f"loss = {value.item():.4f}"

    return finite_check


def single_pair(checks, *, loss, inputs, expected: float, diagnosis, hint,
                title="works for a batch of one pair (N = 1)"):
    """A batch of one must work and give `expected` (a crash is the check's own diagnosis; a
    wrong finite value only says the loss is wrong there, which other checks explain)."""

    @checks.add(title, diagnosis=diagnosis, hint=hint, crash_means_mistake=True)
    def single_pair_check(fn):
        value = loss(fn, *inputs()).item()
        if not math.isfinite(value) or abs(value - expected) > 1e-5:
            raise Fail(f"N = 1 should give {expected:g}", measured=f"{value:.5f}",
                       expected=f"{expected:g}", conclusive=False)

    return single_pair_check


def known_answers(checks, *, cases, build, loss, grads, value_key="loss", describe,
                  title="matches known answers (values and gradients)",
                  diagnosis="the loss differs from the reference on fixed inputs",
                  hint="if the other checks pass, compare the temperature handling and the "
                  "reduction"):
    """Stored inputs and outputs (grader/data): the value and each gradient must match.

    `build(case)` returns (args, kwargs) with float64 leaf tensors; `grads` maps a gradient's
    key in the case to the index of the argument it belongs to; `describe(case)` names the case.
    A mismatch is non-conclusive: when other checks fail they say why.
    """

    @checks.add(title, diagnosis=diagnosis, hint=hint)
    def known_answers_check(fn):
        for case in cases():
            args, kwargs = build(case)
            value = loss(fn, *args, **kwargs)
            want = case[value_key]
            if abs(value.item() - want) > 1e-8 * max(1.0, abs(want)):
                raise Fail(f"{describe(case)}: wrong value", measured=f"{value.item():.8f}",
                           expected=f"{want:.8f}", conclusive=False)
            if not value.requires_grad:
                raise Fail("the loss does not require grad", diagnosis="the graph is cut")
            value.backward()
            for key, index in grads.items():
                expected = torch.tensor(case[key], dtype=torch.float64)
                got = args[index].grad
                if got is None or not torch.allclose(got, expected, rtol=1e-6, atol=1e-9):
                    raise Fail(
                        f"{describe(case)}: the value is right but the gradient {key} is not",
                        diagnosis="part of the computation is detached or uses a "
                        "non-differentiable step, so the gradient differs even though the "
                        "value matches",
                    )
        return "all stored cases match"

    return known_answers_check
