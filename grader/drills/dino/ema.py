"""Checks for `ema_update` (drill 04): the teacher, and only the teacher, moves to momentum *
teacher + (1 - momentum) * student for every parameter, in place, without sharing memory with the
student or leaving autograd history, with the buffers untouched, float64 precision kept, and fast
enough on a model with half a million parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from ...checks import checklist
from ...kit.compare import changed, snapshot
from ...sandbox import Fail
from ._common import F64
from ._ema_inputs import (
    _BUFFERS,
    _BUFFERS_HINT,
    _EMA_MISTAKES,
    _NO_GRAD,
    _SHARED,
    _SHARED_HINT,
    _STUDENT_CHANGED,
    _compare_params,
    _ema,
    _explain,
    _fail_for,
    _pair,
    _params,
    _shared,
    _update,
    _updated,
)

ema_checks = checklist(
    "ema_update",
    drill="04_dino",
    smoke=lambda fn: fn(nn.Linear(2, 2), nn.Linear(2, 2), 0.5),
)


@ema_checks.add(
    "changes only the teacher",
    diagnosis=_STUDENT_CHANGED,
    hint="the teacher, the first argument, is the only model that changes: read the student, "
    "never write into it",
)
def ema_student_untouched(fn):
    teacher, student = _pair(320)
    s0 = snapshot(student)
    _ema(fn, teacher, student, 0.9)
    moved = changed(student, s0)
    if moved:
        shared = _shared(teacher, student)
        raise Fail(f"the student's {', '.join(moved)} changed"
                   + (f", and the teacher's {', '.join(shared)} now share its memory"
                      if shared else ""),
                   diagnosis=_SHARED if shared else None,
                   hint=_SHARED_HINT if shared else None,
                   measured="changed", expected="the student exactly as it was")
    return "student untouched"


@ema_checks.add(
    "moves every parameter to momentum * teacher + (1 - momentum) * student",
    diagnosis="the teacher's parameters are not the momentum average of teacher and student",
    hint="for each matching pair of parameters, the teacher keeps the share `momentum` of its "
    "own value and takes the rest from the student",
)
def ema_formula(fn):
    for m in (0.9, 0.5, 0.996):
        teacher, student = _pair(300 + int(1000 * m))
        t0, s0, wrong, kinds = _update(fn, teacher, student, m)
        if wrong:
            # Values equal to the student's *and* the student's very memory: `.data` aliasing,
            # not a copy.
            aliased = kinds == {"copied"} and set(wrong) <= set(_shared(teacher, student))
            raise Fail(
                f"momentum {m}: {len(wrong)} of {len(_params(teacher))} parameters are wrong "
                f"({', '.join(wrong)})" + (", and they share memory with the student"
                                           if aliased else ""),
                diagnosis=_SHARED if aliased else _explain(teacher, student, s0, wrong, kinds),
                hint=_SHARED_HINT if aliased else None,
                measured=f"{teacher.head.bias.detach().tolist()} (head.bias)",
                expected=f"{(m * t0['head.bias'] + (1 - m) * s0['head.bias']).tolist()}",
            )
    return "exact for momentum 0.9, 0.5 and 0.996, all 7 parameters"


@ema_checks.add(
    "momentum 1 leaves the teacher as it is; momentum 0 copies the student",
    diagnosis="the limits are wrong: momentum is the weight the teacher keeps of itself",
    hint="a momentum of 1 leaves the teacher frozen and a momentum of 0 makes it a copy of the "
    "student: momentum is the share the teacher keeps of itself",
)
def ema_limits(fn):
    found = {}
    for m in (1.0, 0.0):
        teacher, student = _pair(310)
        _, s0, wrong, kinds = _update(fn, teacher, student, m)
        if wrong:
            found[m] = wrong, kinds, _explain(teacher, student, s0, wrong, kinds)
    if not found:
        return "momentum 1 keeps, momentum 0 copies"
    # Both limits give the other one: the weights are swapped. Only momentum 1 copies the
    # student: the momentum is ignored.
    kinds = {m: found[m][1] if m in found else set() for m in (1.0, 0.0)}
    if kinds[1.0] == {"copied"} and kinds[0.0] == {"unchanged"}:
        m, diagnosis = 1.0, _EMA_MISTAKES["swapped"]
    elif kinds[1.0] == {"copied"} and 0.0 not in found:
        m, diagnosis = 1.0, _EMA_MISTAKES["copied"]
    else:
        m = 1.0 if 1.0 in found else 0.0
        diagnosis = found[m][2]
    raise Fail(f"momentum {m:g}: wrong parameters ({', '.join(found[m][0])})"
               + (", and momentum 0 too" if m == 1.0 and 0.0 in found else ""),
               diagnosis=diagnosis, conclusive=diagnosis is not None)


@ema_checks.add(
    "updates the teacher's own parameters in place",
    diagnosis="the teacher's Parameter objects were replaced: anything holding them (an "
    "optimizer, hooks, another reference to the model) no longer sees the teacher",
    hint="update the teacher's parameters in place, without autograd, from the matching "
    "student parameters; never replace the Parameter objects themselves",
)
def ema_in_place(fn):
    teacher, student = _pair(330)
    ids = {k: id(v) for k, v in _params(teacher).items()}
    _ema(fn, teacher, student, 0.5)
    _fail_for([k for k, v in _params(teacher).items() if ids.get(k) != id(v)],
              "are new objects after the update",
              measured="new Parameter objects", expected="the same objects, new values")
    return "same Parameter objects, new values"


@ema_checks.add(
    "the teacher does not share memory with the student",
    diagnosis=_SHARED,
    hint=_SHARED_HINT,
)
def ema_no_aliasing(fn):
    teacher, student = _updated(fn, 340, 0.0)
    _fail_for(_shared(teacher, student), "share memory with the student after the update",
              measured="shared storage", expected="separate tensors")
    t1 = snapshot(teacher, "parameters")
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)  # an optimizer step on the student
    moved = changed(teacher, t1, "parameters")
    if moved:
        raise Fail(f"an update of the student moved the teacher's {', '.join(moved)}",
                   measured="teacher moved", expected="teacher unchanged")
    return "separate storage"


@ema_checks.add(
    "leaves no autograd history on the teacher",
    diagnosis=_NO_GRAD,
    hint="run the whole update without autograd, inside a torch.no_grad block",
)
def ema_no_history(fn):
    teacher, student = _updated(fn, 350, 0.9)
    _fail_for([k for k, p in _params(teacher).items()
               if p.grad_fn is not None or p.requires_grad or not p.is_leaf],
              "carry autograd history or require grad after the update",
              measured="grad_fn set / requires_grad=True",
              expected="plain leaf tensors, requires_grad=False as before")
    if any(p.grad is not None for p in student.parameters()):
        raise Fail("the student's parameters received a .grad",
                   diagnosis="the update ran a backward pass on the student")
    return "no grad_fn, requires_grad unchanged"


@ema_checks.add(
    "works when the teacher's parameters still require grad",
    diagnosis="the update is recorded by autograd: an in-place change of a parameter that "
    "requires grad is only allowed under torch.no_grad()",
    hint="run the whole update without autograd, inside a torch.no_grad block",
)
def ema_teacher_requires_grad(fn):
    teacher, student = _pair(360, teacher_grad=True)
    try:
        _, s0, wrong, kinds = _update(fn, teacher, student, 0.75)
    except Fail as failure:
        if failure.crashed and "leaf Variable that requires grad" in failure.message:
            # autograd refuses the in-place update
            raise Fail(failure.message, diagnosis=_NO_GRAD, hint="run the whole update without "
                       "autograd, inside a torch.no_grad block") from None
        raise
    if wrong:
        mistake = _explain(teacher, student, s0, wrong, kinds)
        raise Fail(f"wrong parameters: {', '.join(wrong)}", diagnosis=mistake,
                   conclusive=mistake is not None)
    if any(not p.requires_grad or p.grad_fn is not None for p in teacher.parameters()):
        raise Fail("the teacher's parameters changed their autograd status",
                   measured="grad_fn set or requires_grad switched off",
                   expected="leaves that still require grad")
    return "correct, and the parameters are still leaves"


@ema_checks.add(
    "leaves the buffers alone (parameters only)",
    diagnosis=_BUFFERS,
    hint=_BUFFERS_HINT,
)
def ema_buffers(fn):
    teacher, student = _pair(370)
    b0 = snapshot(teacher, "buffers")
    s0 = snapshot(student)
    _ema(fn, teacher, student, 0.9)
    moved = changed(teacher, b0, "buffers")
    if moved:
        # Buffers *and* parameters equal to the student's: the whole student was copied.
        copied = not changed(teacher, s0)
        raise Fail(f"the teacher's buffers changed: {', '.join(moved)}"
                   + (", and every parameter and buffer is now the student's" if copied else ""),
                   diagnosis=_EMA_MISTAKES["copied"] if copied else None,
                   measured="changed", expected="unchanged")
    return "running_mean, running_var and num_batches_tracked untouched"


@ema_checks.add(
    "float64 models stay float64, to float64 precision",
    diagnosis="the update drops to float32 somewhere (a .float(), or a float32 tensor made "
    "inside without dtype=)",
    hint="do the arithmetic on the parameters themselves",
)
def ema_float64(fn):
    # First on numbers float32 holds exactly (1 and 3, momentum 0.5): a wrong value there is a
    # wrong update, named where the values show which; then on numbers it cannot hold.
    for fine in (False, True):
        teacher, student = _pair(380)
        with torch.no_grad():
            for p in teacher.parameters():
                p.fill_(1.0)
            for p in student.parameters():
                p.fill_(1.0 + 2 ** -30 if fine else 3.0)
        t0, s0 = snapshot(teacher), snapshot(student)
        _ema(fn, teacher, student, 0.5)
        for name, p in _params(teacher).items():
            if p.dtype != F64:
                raise Fail(f"{name} became {p.dtype}", measured=p.dtype,
                           expected="torch.float64")
        wrong, kinds = _compare_params(teacher, t0, s0, 0.5)
        if wrong and not fine:
            mistake = _explain(teacher, student, s0, wrong, kinds)
            raise Fail(f"teacher 1, student 3, momentum 0.5 (exact in float32 too): wrong "
                       f"{', '.join(wrong)}", measured=f"{teacher.scale.detach().tolist()} (scale)",
                       expected="[2.0, 2.0]", diagnosis=mistake, conclusive=mistake is not None)
        for name, p in _params(teacher).items():
            if fine and (p.detach() - (1.0 + 2 ** -31)).abs().max().item() > 1e-15:
                raise Fail(f"{name} is off by more than float64 rounding",
                           diagnosis=_EMA_MISTAKES["float32"],
                           measured=f"{p.detach().flatten()[0].item():.17f}",
                           expected=f"{1.0 + 2 ** -31:.17f}")


@ema_checks.add(
    "is fast on a model with 0.5 million parameters",
    diagnosis="the update is far too slow: a Python loop over individual numbers?",
    hint="update whole tensors at once, one parameter tensor per step",
    timeout=2.0,
)
def ema_fast(fn):
    teacher, student = _pair(390, dtype=torch.float32, width=700)
    with torch.random.fork_rng(devices=[]):
        teacher.head, student.head = nn.Linear(700, 700), nn.Linear(700, 700)
    with torch.no_grad():
        student.head.weight.fill_(1.0)
        teacher.head.weight.fill_(0.0)
    teacher.head.requires_grad_(False)
    t0, s0 = snapshot(teacher), snapshot(student)
    _ema(fn, teacher, student, 0.5)
    if not torch.allclose(teacher.head.weight, torch.full_like(teacher.head.weight, 0.5)):
        wrong, kinds = _compare_params(teacher, t0, s0, 0.5)
        mistake = _explain(teacher, student, s0, wrong, kinds) if wrong else None
        raise Fail("the large layer's weights are not the momentum average",
                   diagnosis=mistake or "the teacher's parameters are not the momentum average "
                   "of teacher and student", conclusive=mistake is not None)
    return f"{sum(p.numel() for p in teacher.parameters()):,} parameters"
