"""Comparisons for the `ema_update` checks, run on the teacher/student pair of grader/kit/nets.py
(nested layers, a bare Parameter and BatchNorm buffers): helpers that run the learner's update and
find which parameters are wrong, which share memory with the student, and the mistake the wrong
values point to.
"""

from __future__ import annotations

import torch

from ...kit.compare import changed, snapshot
from ...kit.nets import ema_pair as _pair
from ...sandbox import Fail, call


def _params(net):
    return dict(net.named_parameters())


def _ema(fn, teacher, student, momentum):
    try:
        call(fn, teacher, student, momentum)
    except Fail as failure:
        if "Long" in failure.message:  # arithmetic on BatchNorm's integer counter
            raise Fail(failure.message, diagnosis=_BUFFERS, hint=_BUFFERS_HINT) from None
        raise


def _updated(fn, seed, momentum):
    """A fresh (teacher, student) pair (ema_pair(seed)) after ema_update(teacher, student,
    momentum)."""
    teacher, student = _pair(seed)
    _ema(fn, teacher, student, momentum)
    return teacher, student


def _fail_for(names, what, **shown):
    """Fail when `names` (of the teacher's parameters, say) is not empty: "<names> <what>"."""
    if names:
        raise Fail(f"{', '.join(names)} {what}", **shown)


def _update(fn, teacher, student, momentum):
    """Run ema_update(teacher, student, momentum) and compare every teacher parameter with
    momentum * teacher + (1 - momentum) * student: (t0, s0, wrong, kinds), t0 and s0 snapshots of
    the teacher and the student before the call, `wrong` and `kinds` as _compare_params gives."""
    t0, s0 = snapshot(teacher), snapshot(student)
    _ema(fn, teacher, student, momentum)
    return (t0, s0, *_compare_params(teacher, t0, s0, momentum))


_BUFFERS = ("the buffers were averaged or copied too: DINO's EMA covers the parameters only; "
            "the teacher keeps its own buffers (BatchNorm running statistics and its counter)")
_BUFFERS_HINT = ("iterate over the two models' parameters only, not over their state dicts, "
                 "which include the buffers")


_SHARED = ("the teacher's parameters now share storage with the student's (`.data` rebound to "
           "the student's tensor, or an in-place op on the student): every later optimizer step "
           "on the student would move the teacher too, so it is no longer an average")
_SHARED_HINT = ("compute new values into the teacher's own tensors; never assign the student's "
                "tensors (or .data) to the teacher")


def _shared(teacher, student):
    """Names of the teacher's parameters that share storage with the matching student one."""
    return [name for (name, pt), ps in zip(_params(teacher).items(), student.parameters())
            if pt.untyped_storage().data_ptr() == ps.untyped_storage().data_ptr()]


def _compare_params(teacher, t0, s0, m):
    """Names of the parameters that are wrong, and the likeliest mistake."""
    wrong, kinds = [], set()
    for name, p in _params(teacher).items():
        got = p.detach()
        want = m * t0[name] + (1 - m) * s0[name]
        if got.shape == want.shape and torch.allclose(got, want, rtol=1e-10, atol=1e-12):
            continue
        wrong.append(name)
        for kind, value, rel in (("unchanged", t0[name], 1e-10), ("copied", s0[name], 1e-10),
                                 ("swapped", (1 - m) * t0[name] + m * s0[name], 1e-10),
                                 ("float32", want, 1e-6)):
            if got.shape == value.shape and torch.allclose(got, value, rtol=rel, atol=rel):
                kinds.add(kind)
                break
        else:
            kinds.add("other")
    return wrong, kinds


_STUDENT_CHANGED = ("the student was changed: the arguments are swapped (the student is pulled "
                    "toward the teacher) or an in-place operation wrote into the student")

_NO_GRAD = ("the update is recorded by autograd: the teacher's parameters now have a grad_fn (or "
            "started requiring grad), so the teacher becomes part of the student's graph")

_UNCHANGED = ("the teacher's parameters did not change: the new values were never written into "
              "them (assigned to a local name, or a new model built and returned?)")

_EMA_MISTAKES = {
    "swapped": "the momentum weights are swapped: the teacher should keep `momentum` of itself "
    "and take 1 - momentum from the student",
    "copied": "the student is copied into the teacher: the momentum is ignored",
    "float32": "the update drops to float32 somewhere: the values are right to float32 "
    "precision only (a .float(), or a float32 tensor made inside without dtype=)",
}


def _ema_diagnosis(wrong, kinds, total):
    if len(kinds) == 1 and (kind := next(iter(kinds))) in _EMA_MISTAKES:
        return _EMA_MISTAKES[kind]
    if kinds == {"unchanged"} and len(wrong) == total:
        return _UNCHANGED
    if "unchanged" in kinds:
        return ("some parameters were skipped (" + ", ".join(wrong) + "): every parameter of "
                "the teacher, biases and bare nn.Parameters included, follows the student")
    return None


def _explain(teacher, student, s0, wrong, kinds):
    """The mistake behind wrong teacher parameters: a student that changed as well (the update
    went the wrong way) or memory shared with it, before what the values themselves show."""
    moved = changed(student, s0)
    shared = set(wrong) & set(_shared(teacher, student))
    if shared or (moved and _shared(teacher, student)):
        return _SHARED
    if moved:
        return _STUDENT_CHANGED
    return _ema_diagnosis(wrong, kinds, len(_params(teacher)))
