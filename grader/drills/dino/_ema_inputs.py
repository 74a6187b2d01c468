"""Models and comparisons for the `ema_update` checks: a small teacher/student pair with nested
layers, a bare Parameter and BatchNorm buffers, and helpers that find which parameters are wrong,
which share memory with the student, and the mistake the wrong values point to.
"""

from __future__ import annotations

import torch
from torch import nn

from ...inputs import gen as _gen
from ...sandbox import Fail, call
from ._common import F64


class _Net(nn.Module):
    """A small network with the parts an EMA must handle: nested layers, a bare Parameter,
    biases, and BatchNorm buffers (float running statistics and an integer counter)."""

    def __init__(self, width=4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, width), nn.BatchNorm1d(width), nn.ReLU())
        self.head = nn.Linear(width, 2)
        self.scale = nn.Parameter(torch.ones(2))


def _pair(seed, dtype=F64, teacher_grad=False, width=4):
    """(teacher, student) with different, known parameters and buffers; global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        teacher, student = _Net(width), _Net(width)
    for n, net in enumerate((teacher, student)):
        net.to(dtype)
        g = _gen(seed + n)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
            for b in net.buffers():
                if b.is_floating_point():
                    b.copy_(torch.rand(b.shape, generator=g, dtype=dtype) + 0.5)
                else:
                    b.fill_(7 + n)
    for p in teacher.parameters():
        p.requires_grad_(teacher_grad)
    return teacher, student


def _snapshot(net):
    return {k: v.detach().clone() for k, v in net.state_dict(keep_vars=True).items()}


def _params(net):
    return dict(net.named_parameters())


def _ema(fn, teacher, student, momentum):
    try:
        call(fn, teacher, student, momentum)
    except Fail as failure:
        if "Long" in failure.message:  # arithmetic on BatchNorm's integer counter
            raise Fail(failure.message, diagnosis=_BUFFERS, hint=_BUFFERS_HINT) from None
        raise


_BUFFERS = ("the buffers were averaged or copied too: DINO's EMA covers the parameters only; "
            "the teacher keeps its own buffers (BatchNorm running statistics and its counter)")
_BUFFERS_HINT = "iterate over .parameters(), not over .state_dict() (which includes the buffers)"


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
    changed = [k for k, v in student.state_dict(keep_vars=True).items()
               if not torch.equal(v.detach(), s0[k])]
    shared = set(wrong) & set(_shared(teacher, student))
    if shared or (changed and _shared(teacher, student)):
        return _SHARED
    if changed:
        return _STUDENT_CHANGED
    return _ema_diagnosis(wrong, kinds, len(_params(teacher)))
