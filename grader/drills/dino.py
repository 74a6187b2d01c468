"""Checks for drill 04: DINO's `dino_loss`, `update_center` and `ema_update` (Caron et al. 2021).

The checks never compute the DINO loss the way a solution would. They use inputs whose correct
value has a closed form: a teacher so peaked that its target is exactly one-hot, and student
logits built as `student_temp * log(q)` so that the student's log-probabilities are exactly
`log(q)`; a uniform student, whose loss is log K whatever the teacher says. They compare the
learner's function with itself (moving the center into the teacher outputs must not change the
value) and with known answers stored in grader/data/dino_loss.json and dino_center.json. Where a
wrong value has a recognisable signature (log K / K, a mean over every view pair including a view
with itself, the momentum weights swapped) the failure names the mistake that produces it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..checks import checklist
from ..data import load_cases
from ..inputs import close
from ..inputs import gen as _gen
from ..inputs import randn as _randn
from ..sandbox import Fail, call, scalar, tensor_out

F64 = torch.float64

loss_checks = checklist(
    "dino_loss",
    drill="04_dino",
    probe=lambda fn: fn([torch.zeros(1, 3)] * 3, [torch.zeros(1, 3)] * 2, torch.zeros(3)),
)
center_checks = checklist(
    "update_center",
    drill="04_dino",
    probe=lambda fn: fn(torch.zeros(3), [torch.zeros(1, 3)] * 2),
)
ema_checks = checklist(
    "ema_update",
    drill="04_dino",
    probe=lambda fn: fn(nn.Linear(2, 2), nn.Linear(2, 2), 0.5),
)


# -- helpers -------------------------------------------------------------------------------------


def _close(a, b, rel=1e-6, abs_=1e-9):  # tighter than the shared default: exact formulas
    return close(a, b, rel, abs_)


def _rises_with(temps, losses, name, whose):
    """Pass (with the values) when the loss rises steadily with the temperature; otherwise name
    the mistake the trend shows: flat means ignored, falling means multiplied instead of divided."""
    text = ", ".join(f"T={t}: {v:.4f}" for t, v in zip(temps, losses))
    if all(a < b for a, b in zip(losses, losses[1:])):
        return text
    if all(_close(a, losses[0]) for a in losses):
        diagnosis = f"{name} is ignored: the loss does not change with it"
    elif all(a > b for a, b in zip(losses, losses[1:])):
        diagnosis = f"{whose} logits are multiplied by {name} instead of divided"
    else:
        diagnosis = None
    raise Fail(f"the loss does not rise steadily with {name}: " + text,
               diagnosis=diagnosis, measured=text, expected=f"rising with {name}")


def _views_unchanged(name, views, before, count):
    if len(views) != count:
        raise Fail(
            f"the list `{name}` changed length during the call",
            diagnosis="the function modified the caller's list of views (.pop(), .append(), "
            "del, or an in-place sort)",
            hint="read the lists; build new ones if you need to",
        )
    for k, (v, old) in enumerate(zip(views, before)):
        if v.shape != old.shape or not torch.equal(v.detach(), old):
            raise Fail(
                f"view {k} of `{name}` was changed in place by your function",
                diagnosis="an in-place operation modified one of the caller's tensors "
                "(for example `t -= center`, `.div_()` or `.sub_()` on a view)",
                hint="build new tensors (t = t - center) instead of writing into the inputs",
            )


def _loss(fn, student, teacher, center, **temps):
    """Call dino_loss, insist on a finite scalar, and check that no view was changed in place."""
    s_before = [v.detach().clone() for v in student]
    t_before = [v.detach().clone() for v in teacher]
    out = call(fn, student, teacher, center, **temps)
    _views_unchanged("student_out", student, s_before, len(s_before))
    _views_unchanged("teacher_out", teacher, t_before, len(t_before))
    return scalar(out)


def _onehot_teacher(classes, k, margin=60.0):
    """Teacher logits so peaked that softmax((t - 0) / T) is exactly one-hot in float64 for
    T <= 0.1 (the other entries are below exp(-600))."""
    t = torch.zeros(len(classes), k, dtype=F64)
    t[torch.arange(len(classes)), torch.tensor(classes)] = margin
    return t


def _distributions(b, k, seed):
    """b probability vectors over k entries, each entry between about 0.03 and 0.6."""
    w = torch.rand(b, k, generator=_gen(seed), dtype=F64) + 0.1
    return w / w.sum(1, keepdim=True)


def _pair_ce(q, classes, power=1.0, teacher_logit=None):
    """-log of the student probability of the teacher's class, averaged over the batch, when the
    student's log-probabilities are log_softmax(power * log q). Closed form for one-hot targets.

    With `teacher_logit` = a, the target is softmax(a * onehot) instead (a teacher whose logits
    were scaled down): weights proportional to e^a for the class and 1 elsewhere."""
    total = 0.0
    for row, c in enumerate(classes):
        log_z = math.log(sum(float(x) ** power for x in q[row]))
        log_q = [power * math.log(float(x)) - log_z for x in q[row]]
        if teacher_logit is None:
            total += -log_q[c]
            continue
        rest = math.exp(-teacher_logit)  # the weight of every other class, relative to c
        norm = 1.0 + (len(log_q) - 1) * rest
        total += -sum((1.0 if k == c else rest) / norm * lq for k, lq in enumerate(log_q))
    return total / len(classes)


class _OneHotCase:
    """G one-hot teacher views and V student views with exactly known log-probabilities."""

    def __init__(self, classes, v, k, seed, student_temp=0.1, margin=60.0):
        self.classes, self.k, self.ts, self.margin = classes, k, student_temp, margin
        self.q = [_distributions(len(classes[0]), k, seed + j) for j in range(v)]
        self.teacher = [_onehot_teacher(c, k, margin) for c in classes]
        self.student = [student_temp * q.log() for q in self.q]
        self.center = torch.zeros(k, dtype=F64)

    def table(self, power=1.0, teacher_logit=None):
        """table[i][j]: the cross-entropy of teacher view i against student view j."""
        return [[_pair_ce(q, c, power, teacher_logit) for q in self.q] for c in self.classes]

    def average(self, power=1.0):
        return _pair_reductions(self.table(power), len(self.classes[0]))[0][0]

    def diagnose(self, value, teacher_temp):
        """The mistake (or pair of mistakes) whose closed-form value equals `value`."""
        ts, tt = self.ts, teacher_temp
        powers = [(1.0, None),
                  (ts / tt, "the temperatures are swapped: the student is divided by "
                   "teacher_temp (and the teacher by student_temp)"),
                  (ts * ts, "the student's logits are multiplied by the temperature instead "
                   "of divided"),
                  (ts, "the student's logits are not divided by the temperature")]
        if ts != 0.1:
            powers.append((ts / 0.1, "student_temp is hard-coded to 0.1: the argument is "
                           "ignored"))
        # The teacher's target stays one-hot unless its logits are scaled *down*: multiplied by
        # teacher_temp, the margin becomes margin * teacher_temp and the target a soft one.
        teachers = [(None, None),
                    (self.margin * tt, "the teacher's logits are multiplied by teacher_temp "
                     "instead of divided")]
        for teacher_logit, teacher_mistake in teachers:
            for power, temperature_mistake in powers:
                for signature, pair_mistake in _pair_reductions(
                        self.table(power, teacher_logit), len(self.classes[0])):
                    if _close(value, signature):
                        found = [m for m in (pair_mistake, temperature_mistake, teacher_mistake)
                                 if m]
                        return "; and ".join(found) if found else None
        return None


def _mean(xs):
    return sum(xs) / len(xs)


def _find(value, signatures, rel=1e-6):
    for signature, mistake in signatures:
        if _close(value, signature, rel=rel):
            return mistake
    return None


def _pair_reductions(tab, b):
    """The correct mean over pairs (first, with no mistake) and the classic wrong reductions."""
    g, v = len(tab), len(tab[0])
    right = [tab[i][j] for i in range(g) for j in range(v) if i != j]
    every = [tab[i][j] for i in range(g) for j in range(v)]
    found = [
        (_mean(right), None),
        (_mean(every), "same-view pairs are included: each global view is also compared with "
         "itself (the teacher and the student see the same crop, an easy, useless target)"),
        (sum(right), "the pair losses are summed instead of averaged over the pairs"),
        (sum(right) / len(every), "the sum skips same-view pairs but is divided by the number "
         "of all pairs (G x V) instead of the number of terms added"),
        (sum(right) / v, "the sum is divided by the number of student views instead of the "
         "number of pairs"),
        (_mean([tab[i][i] for i in range(g)]), "only same-view pairs are used: a view should be "
         "compared with every *other* view, never with itself"),
        (b * _mean(right), "the cross-entropy is summed over the batch instead of averaged"),
    ]
    if g != v:
        found += [
            (sum(right) / g, "the sum is divided by the number of teacher views instead of the "
             "number of pairs"),
            (_mean([tab[i][j] for i in range(g) for j in range(g) if i != j]), "the local views "
             "are left out: every student view, local crops included, must match each teacher "
             "view"),
            (_mean([tab[i][j] for i in range(g) for j in range(g, v)]), "the student's global "
             "views are left out: they too must match the other global view of the teacher"),
        ]
    return found


# -- dino_loss -----------------------------------------------------------------------------------


@loss_checks.add(
    "returns a scalar tensor",
    diagnosis="the loss is not a single number",
    hint="average the per-pair cross-entropies into one 0-dimensional tensor",
)
def loss_returns_scalar(fn):
    s = [_randn(4, 6, seed=j) for j in range(4)]
    t = [_randn(4, 6, seed=10 + i) for i in range(2)]
    out = _loss(fn, s, t, torch.zeros(6))
    if out.dtype != torch.float32:
        raise Fail(f"float32 inputs gave a {out.dtype} loss", diagnosis="the dtype changed")
    return f"loss = {out.item():.4f} on random outputs (B=4, K=6, 2 global + 2 local views)"


@loss_checks.add(
    "leaves its inputs unchanged",
    diagnosis="an in-place operation modified the caller's tensors",
    hint="write `t = t - center`, not `t -= center`; never modify the lists you are given",
)
def loss_inputs_unchanged(fn):
    s = [_randn(3, 5, seed=20 + j) for j in range(3)]
    t = [_randn(3, 5, seed=30 + i) for i in range(2)]
    _loss(fn, s, t, _randn(5, seed=40))  # every view, the lists and the center are compared
    return "views, lists and center untouched"


@loss_checks.add(
    "a uniform student costs exactly log K, whatever the teacher",
    diagnosis="the cross-entropy is not a sum over the K dimensions of one distribution per "
    "sample, averaged over the batch",
    hint="for each sample: -sum_k P_teacher[k] * log P_student[k]; then mean over the batch",
)
def uniform_student(fn):
    b, k = 3, 5
    s = [torch.zeros(b, k) for _ in range(3)]
    t = [_randn(b, k, seed=50 + i) * 2 for i in range(2)]
    value = _loss(fn, s, t, torch.zeros(k)).item()
    expected = math.log(k)
    if _close(value, expected, rel=1e-5):
        return f"{value:.5f} = log {k}"
    pairs = 2 * 3 - 2
    signatures = [
        (math.log(k) / k, "the cross-entropy is averaged over the K dimensions instead of "
         "summed: a uniform student then gives log(K)/K"),
        (k / b * math.log(k), "the teacher's softmax runs over the batch axis (dim=0) instead of "
         "over the K output dimensions"),
        (math.log(b), "the student's log-softmax runs over the batch axis (dim=0) instead of "
         "over the K output dimensions"),
        (b * math.log(k), "the cross-entropy is summed over the batch instead of averaged"),
        (pairs * math.log(k), "the pair losses are summed instead of averaged over the pairs"),
        (pairs / 6 * math.log(k), "the sum skips same-view pairs but is divided by the number "
         "of all pairs (G x V) instead of the number of terms added"),
    ]
    raise Fail(
        f"an all-zero student (uniform over K={k}) gave {value:.5f}",
        diagnosis=_find(value, signatures, rel=1e-5),
        measured=f"{value:.5f}",
        expected=f"log {k} = {expected:.5f}",
    )


@loss_checks.add(
    "the center is subtracted from the teacher's outputs, and only there",
    diagnosis="the center is not used as in DINO: targets = softmax((teacher_out - center) / "
    "teacher_temp), and the student never sees the center",
    hint="subtract the center from each teacher view before dividing by teacher_temp",
)
def centering(fn):
    s = [_randn(5, 6, seed=100 + j, dtype=F64) for j in range(3)]
    t = [_randn(5, 6, seed=110 + i, dtype=F64) for i in range(2)]
    c = _randn(6, seed=120, dtype=F64)
    zero = torch.zeros(6, dtype=F64)
    tt = 0.07
    value = _loss(fn, s, t, c, teacher_temp=tt).item()
    moved = _loss(fn, s, [x - c for x in t], zero, teacher_temp=tt).item()
    if _close(value, moved, rel=1e-9):
        return f"{value:.6f} with the center = {moved:.6f} with it moved into the teacher outputs"

    def alt(student, teacher):
        return _loss(fn, student, teacher, zero, teacher_temp=tt).item()

    signatures = [
        (alt(s, t), "the center argument is ignored: no centering, so nothing stops one "
         "dimension from dominating the teacher"),
        (alt([x - c for x in s], t), "the center is subtracted from the student instead of the "
         "teacher"),
        (alt([x - c for x in s], [x - c for x in t]), "the center is subtracted from the student "
         "as well as the teacher: only the teacher is centred"),
        (alt(s, [x + c for x in t]), "the center is added to the teacher instead of subtracted"),
        (alt(s, [x - tt * c for x in t]), "the center is subtracted after dividing by "
         "teacher_temp: it must be subtracted from the raw teacher outputs first"),
    ]
    raise Fail(
        "moving the center into the teacher outputs (t - c with center 0) changed the loss",
        diagnosis=_find(value, signatures, rel=1e-9),
        measured=f"{value:.6f}",
        expected=f"{moved:.6f}",
    )


@loss_checks.add(
    "averages over every (teacher view, student view) pair except a view with itself",
    diagnosis="the loss is not the mean over the right set of view pairs",
    hint="loop over teacher views i and student views j, skip j == i, and divide by the "
    "number of terms you added",
)
def pairs_counted(fn):
    case = _OneHotCase([[0, 1], [2, 3]], 4, 4, seed=60)
    value = _loss(fn, case.student, case.teacher, case.center).item()
    expected = case.average()
    if _close(value, expected):
        return f"{value:.5f}, the mean of 6 pairs (2 teacher views x 4 student views - 2)"
    raise Fail(
        f"2 one-hot teacher views, 4 student views with known probabilities gave {value:.6f}",
        diagnosis=case.diagnose(value, 0.04),
        measured=f"{value:.6f}",
        expected=f"{expected:.6f} (the mean of the 6 pairs with i != j)",
    )


@loss_checks.add(
    "the student's logits are divided by student_temp",
    diagnosis="the student temperature is not applied as log_softmax(student_out / student_temp)",
    hint="divide the student's outputs by student_temp before the log-softmax",
)
def student_temperature(fn):
    found = []
    for ts, tt in ((0.1, 0.04), (0.2, 0.07)):
        case = _OneHotCase([[0, 1], [2, 3]], 3, 4, seed=70, student_temp=ts)
        kwargs = {} if ts == 0.1 else {"student_temp": ts, "teacher_temp": tt}
        value = _loss(fn, case.student, case.teacher, case.center, **kwargs).item()
        expected = case.average()
        where = "with the default temperatures" if not kwargs else f"with student_temp={ts}"
        if _close(value, expected):
            found.append(f"{value:.5f} {where}")
            continue
        raise Fail(
            f"student logits = student_temp * log(q), one-hot teacher, {where}: {value:.6f}",
            diagnosis=case.diagnose(value, tt),
            measured=f"{value:.6f}",
            expected=f"{expected:.6f} (the cross-entropy against q itself)",
        )
    return "; ".join(found)


@loss_checks.add(
    "a lower teacher_temp sharpens the teacher's targets",
    diagnosis="the teacher temperature does not sharpen the teacher: the targets should be "
    "softmax((teacher_out - center) / teacher_temp)",
    hint="divide the centred teacher outputs by teacher_temp before its softmax",
)
def teacher_temperature(fn):
    # Every view is the same, and the student equals the teacher, so the student's
    # cross-entropy is lowest where the teacher's logits are highest: a sharper teacher target
    # (lower teacher_temp) must give a strictly lower loss.
    x = _randn(4, 6, seed=80, dtype=F64)
    c = torch.zeros(6, dtype=F64)
    temps = (0.02, 0.04, 0.1, 0.5)
    losses = [
        _loss(fn, [x - c] * 3, [x.clone(), x.clone()], c, student_temp=0.1, teacher_temp=tt).item()
        for tt in temps
    ]
    return _rises_with(temps, losses, "teacher_temp", "the teacher's")


@loss_checks.add(
    "a lower student_temp sharpens the student",
    diagnosis="the student temperature is applied the wrong way",
    hint="the student's log-probabilities are log_softmax(student_out / student_temp)",
)
def student_temperature_direction(fn):
    # A one-hot teacher whose class is also the student's argmax: a sharper student is rewarded.
    x = _randn(4, 6, seed=90, dtype=F64)
    classes = x.argmax(1).tolist()
    t = _onehot_teacher(classes, 6)
    temps = (0.05, 0.1, 0.3, 1.0)
    losses = [
        _loss(fn, [x] * 3, [t, t.clone()], torch.zeros(6, dtype=F64), student_temp=ts).item()
        for ts in temps
    ]
    return _rises_with(temps, losses, "student_temp", "the student's")


@loss_checks.add(
    "sends no gradient to the teacher or the center",
    diagnosis="the teacher's targets are not detached: gradient flows into the teacher outputs",
    hint="compute the teacher's softmax under torch.no_grad() or call .detach() on it",
)
def teacher_detached(fn):
    s = [_randn(4, 5, seed=130 + j).requires_grad_(True) for j in range(4)]
    t = [_randn(4, 5, seed=140 + i).requires_grad_(True) for i in range(2)]
    c = _randn(5, seed=150).requires_grad_(True)
    loss = _loss(fn, s, t, c)
    if not loss.requires_grad:
        raise Fail(
            "the loss does not require grad",
            diagnosis="the student's side is detached as well: no gradient can reach the student",
            hint="detach only the teacher's targets",
        )
    loss.backward()
    leaked = [f"teacher view {i}" for i, x in enumerate(t)
              if x.grad is not None and x.grad.abs().max() > 0]
    if leaked:
        raise Fail(f"a gradient reached {', '.join(leaked)}", measured="non-zero gradient",
                   expected="no gradient")
    if c.grad is not None and c.grad.abs().max() > 0:
        raise Fail(
            "a gradient reached the center",
            diagnosis="gradient flows into the center: the teacher's targets (centred) must be "
            "a constant for the student",
            measured="non-zero gradient", expected="no gradient",
        )
    missing = [f"student view {j}" for j, x in enumerate(s)
               if x.grad is None or not torch.isfinite(x.grad).all() or x.grad.abs().max() == 0]
    if missing:
        raise Fail(
            f"no useful gradient reached {', '.join(missing)}",
            diagnosis="some student views are cut off from the loss (detached, or left out of "
            "the pairs)",
            hint="every student view, global and local, takes part in at least one pair",
        )
    return "teacher and center get no gradient; all 4 student views do"


@loss_checks.add(
    "stays finite with sharp temperatures and large logits",
    diagnosis="log(softmax(...)) underflows: a probability of exactly 0 gives log 0 = -inf",
    hint="use F.log_softmax for the student and F.softmax for the teacher, never exp by hand",
)
def finite_at_extremes(fn):
    s = [(60 * _randn(4, 8, seed=160 + j)).requires_grad_(True) for j in range(3)]
    t = [10 * _randn(4, 8, seed=170 + i) for i in range(2)]
    out = call(fn, s, t, torch.zeros(8), student_temp=0.1, teacher_temp=0.01)
    if isinstance(out, torch.Tensor) and out.dim() == 0 and not torch.isfinite(out):
        raise Fail(f"the loss is {out.item()} with logits of about +-60 and teacher_temp 0.01",
                   measured=out.item(), expected="a finite number")
    loss = scalar(out)
    if loss.requires_grad:
        loss.backward()
        if any(x.grad is not None and not torch.isfinite(x.grad).all() for x in s):
            raise Fail("the gradient has NaN or inf for large logits",
                       diagnosis="the log-probabilities are computed in an unstable way")
    return f"loss = {loss.item():.3f}"


@loss_checks.add(
    "float64 in, float64 out, to float64 precision",
    diagnosis="the computation drops to float32 somewhere (a .float(), or a float32 tensor made "
    "inside without dtype=)",
    hint="create helper tensors with the inputs' dtype and device",
)
def loss_keeps_float64(fn):
    case = _OneHotCase([[0, 2, 1], [3, 3, 0]], 4, 4, seed=180)
    out = _loss(fn, case.student, case.teacher, case.center)
    if out.dtype != F64:
        raise Fail(f"float64 inputs gave a {out.dtype} loss", measured=out.dtype,
                   expected="torch.float64")
    expected = case.average()
    if abs(out.item() - expected) > 1e-12 * max(1.0, expected):
        raise Fail("the value is off by more than float64 rounding",
                   measured=f"{out.item():.15f}", expected=f"{expected:.15f}")


@loss_checks.add(
    "works with only the two global views and a batch of one",
    diagnosis="the loss breaks without local views or with one sample (a .squeeze(), or a "
    "shape assumed to be larger than 1)",
    hint="with two views there are exactly two pairs: (teacher 0, student 1), (teacher 1, "
    "student 0)",
)
def two_views_one_sample(fn):
    case = _OneHotCase([[1], [2]], 2, 3, seed=190)
    value = _loss(fn, case.student, case.teacher, case.center).item()
    expected = case.average()
    if not _close(value, expected):
        raise Fail("two views, one sample: wrong value", diagnosis=case.diagnose(value, 0.04),
                   measured=f"{value:.6f}", expected=f"{expected:.6f}")
    return f"{value:.5f}"


@loss_checks.add(
    "matches known answers (values and student gradients)",
    diagnosis="the loss differs from the reference on fixed inputs",
    hint="if the other checks pass, compare the temperatures, the center and the reduction",
)
def loss_known_answers(fn):
    for n, case in enumerate(load_cases("dino_loss")):
        s = [torch.tensor(x, dtype=F64, requires_grad=True) for x in case["student_out"]]
        t = [torch.tensor(x, dtype=F64) for x in case["teacher_out"]]
        c = torch.tensor(case["center"], dtype=F64)
        temps = {"student_temp": case["student_temp"], "teacher_temp": case["teacher_temp"]}
        loss = _loss(fn, s, t, c, **temps)
        where = (f"case {n}: {len(t)} teacher and {len(s)} student views, B={len(t[0])}, "
                 f"K={len(t[0][0])}, temperatures {temps['student_temp']}/{temps['teacher_temp']}")
        if abs(loss.item() - case["loss"]) > 1e-8 * max(1.0, abs(case["loss"])):
            raise Fail(f"{where}: wrong value", measured=f"{loss.item():.8f}",
                       expected=f"{case['loss']:.8f}")
        if not loss.requires_grad:
            raise Fail("the loss does not require grad", diagnosis="the graph is cut")
        loss.backward()
        for j, x in enumerate(s):
            want = torch.tensor(case["grad_student"][j], dtype=F64)
            if x.grad is None or not torch.allclose(x.grad, want, rtol=1e-6, atol=1e-10):
                raise Fail(
                    f"{where}: the value is right but the gradient for student view {j} is not",
                    diagnosis="part of the student's computation is detached or uses a "
                    "non-differentiable step, so the gradient differs though the value matches",
                )
    return "all stored cases match"


# -- update_center -------------------------------------------------------------------------------


def _center(fn, center, teacher, **kwargs):
    before = [v.detach().clone() for v in teacher]
    try:
        out = call(fn, center, teacher, **kwargs)
    except Fail as failure:
        if "must match the size" in failure.message:
            raise Fail(failure.message, diagnosis=_WRONG_AXIS, hint=failure.hint) from None
        raise
    _views_unchanged("teacher_out", teacher, before, len(before))
    try:
        out = tensor_out(out, tuple(center.shape), what="the new center")
    except Fail as failure:
        if failure.diagnosis == "the output has the wrong shape":
            failure.diagnosis = ("the new center has the wrong shape: it must have the center's "
                                 "shape (K,), one number per output dimension (no keepdim, and "
                                 "the mean taken over the batch axis)")
        raise
    if not torch.isfinite(out).all():
        raise Fail("the new center has NaN or inf", diagnosis="the computation overflowed")
    return out


_WRONG_AXIS = ("the batch mean runs over the wrong axis: averaging over the K outputs (dim=1) "
               "gives one number per sample; the center needs one per output dimension (dim=0)")


def _views_with_means(means, b, seed, dtype=F64):
    """One (b, K) teacher view per row of `means`, whose batch mean is exactly that row: the
    rows are mean +- a spread, paired so that they cancel."""
    views = []
    for n, mu in enumerate(means):
        spread = torch.randint(-3, 4, (b // 2, len(mu)), generator=_gen(seed + n)).to(dtype)
        rows = [mu + spread, mu - spread] + ([mu.unsqueeze(0)] if b % 2 else [])
        views.append(torch.cat(rows))
    return views


def _center_case(k=4, b=4, seed=0):
    """A center and two teacher views whose per-view batch means are known small integers."""
    g = _gen(seed)
    center = torch.randint(-4, 5, (k,), generator=g).to(F64)
    means = torch.randint(-4, 5, (2, k), generator=g).to(F64)
    return center, _views_with_means(means, b, seed + 1), means


def _center_signatures(center, means, m):
    mean = means.mean(0)
    return [
        ((1 - m) * center + m * mean, "the momentum weights are swapped: the old center should "
         "keep `momentum` and the new batch mean get 1 - momentum"),
        (m * center + (1 - m) * means[0], "only the first teacher view is used: the batch mean "
         "runs over every global view"),
        (m * center + (1 - m) * means[-1], "only the last teacher view is used: the batch mean "
         "runs over every global view"),
        (m * center + (1 - m) * means.sum(0), "the views are summed instead of averaged"),
        (mean, "the old center is dropped: the new center is just the batch mean (no momentum)"),
        (center.clone(), "the center does not move: the batch mean is never mixed in"),
        (0.9 * center + 0.1 * mean, "momentum is hard-coded to 0.9: the argument is ignored"),
    ]


@center_checks.add(
    "returns a new center of the same shape and dtype",
    diagnosis="the new center has the wrong shape: it is the mean over the batch and the views, "
    "one number per output dimension",
    hint="concatenate the teacher views along the batch axis and average over dim 0",
)
def center_shape(fn):
    center, views, _ = _center_case(k=5, b=4, seed=200)
    out = _center(fn, center.float(), [v.float() for v in views])
    if out.dtype != torch.float32:
        raise Fail(f"float32 inputs gave a {out.dtype} center", diagnosis="the dtype changed")
    return "shape (K,), float32"


@center_checks.add(
    "leaves its inputs unchanged",
    diagnosis="an in-place operation modified the caller's tensors",
    hint="build the new center as a new tensor (c = m * c + ...), not with c.mul_() or c *= m",
)
def center_inputs_unchanged(fn):
    center, views, _ = _center_case(seed=205)
    out = _center(fn, center, views)  # the center and every view are compared before and after
    if out is center or out.untyped_storage().data_ptr() == center.untyped_storage().data_ptr():
        raise Fail("the returned center is the input tensor itself",
                   diagnosis="the center was updated in place and returned: the caller's old "
                   "center changed too")
    return "center and views untouched; a new tensor returned"


@center_checks.add(
    "momentum 1 keeps the center, momentum 0 gives the batch mean",
    diagnosis="the limits are wrong: momentum is the weight of the old center",
    hint="new = momentum * center + (1 - momentum) * mean of the teacher outputs",
)
def center_limits(fn):
    center, views, means = _center_case(seed=210)
    kept = _center(fn, center, views, momentum=1.0)
    fresh = _center(fn, center, views, momentum=0.0)
    if torch.allclose(kept, means.mean(0)) and torch.allclose(fresh, center):
        raise Fail("momentum 1 gave the batch mean and momentum 0 kept the old center",
                   diagnosis="the momentum weights are swapped: the old center should keep "
                   "`momentum` and the new batch mean get 1 - momentum")
    if not torch.allclose(kept, center, rtol=0, atol=1e-12):
        raise Fail("momentum 1 changed the center",
                   diagnosis=_find_tensor(kept, _center_signatures(center, means, 1.0)[1:]),
                   measured=kept.tolist(), expected=center.tolist())
    if not torch.allclose(fresh, means.mean(0), rtol=0, atol=1e-12):
        mistake = _find_tensor(fresh, _center_signatures(center, means, 0.0))
        raise Fail("momentum 0 did not give the mean over the batch and the views",
                   diagnosis=mistake, measured=fresh.tolist(), expected=means.mean(0).tolist())
    return "both limits exact"


def _find_tensor(value, signatures):
    for signature, mistake in signatures:
        if value.shape == signature.shape and torch.allclose(value, signature, rtol=1e-9,
                                                             atol=1e-12):
            return mistake
    return None


@center_checks.add(
    "is the momentum average of the mean over batch and views",
    diagnosis="the new center is not momentum * center + (1 - momentum) * batch-and-view mean",
    hint="average the teacher outputs over the batch and over the global views together",
)
def center_formula(fn):
    found = []
    for m, kwargs in ((0.9, {}), (0.5, {"momentum": 0.5}), (0.75, {"momentum": 0.75})):
        center, views, means = _center_case(k=6, b=6, seed=220 + int(100 * m))
        out = _center(fn, center, views, **kwargs)
        expected = m * center + (1 - m) * means.mean(0)
        if torch.allclose(out, expected, rtol=1e-9, atol=1e-12):
            found.append(f"m={m}" + (" (default)" if not kwargs else ""))
            continue
        raise Fail(
            f"momentum {m}{' (the default)' if not kwargs else ''}: wrong center",
            diagnosis=_find_tensor(out, _center_signatures(center, means, m)),
            measured=[round(x, 4) for x in out.tolist()],
            expected=[round(x, 4) for x in expected.tolist()],
        )
    return "exact for " + ", ".join(found)


@center_checks.add(
    "uses every view and every sample, whatever their number",
    diagnosis="the mean does not cover every teacher view and every sample",
    hint="torch.cat the list of views along dim 0 and take the mean over dim 0",
)
def center_many_views(fn):
    g = _gen(230)
    means = torch.randint(-4, 5, (3, 5), generator=g).to(F64)
    views = _views_with_means(means, 3, seed=231)
    center = torch.zeros(5, dtype=F64)
    out = _center(fn, center, views, momentum=0.0)
    if not torch.allclose(out, means.mean(0), rtol=1e-9, atol=1e-12):
        raise Fail("three teacher views of three samples each: wrong mean",
                   diagnosis=_find_tensor(out, _center_signatures(center, means, 0.0)),
                   measured=[round(x, 4) for x in out.tolist()],
                   expected=[round(x, 4) for x in means.mean(0).tolist()])
    one = _center(fn, center, [means[0].unsqueeze(0), means[1].unsqueeze(0)], momentum=0.0)
    if not torch.allclose(one, means[:2].mean(0), rtol=1e-9, atol=1e-12):
        raise Fail("a batch of one sample per view gave the wrong mean",
                   diagnosis="a batch of one breaks the code (a .squeeze(), or a shape assumed "
                   "to be larger than 1)")
    return "3 views of 3 samples, and 2 views of 1 sample"


@center_checks.add(
    "carries no autograd history",
    diagnosis="the new center carries autograd history: it was computed with gradient tracking "
    "from outputs that require grad (as student outputs do). The center is a running statistic "
    "of the teacher, a constant for the loss",
    hint="compute it under torch.no_grad() (or .detach() the outputs first)",
)
def center_no_grad(fn):
    center, views, _ = _center_case(seed=240)
    views = [v.clone().requires_grad_(True) for v in views]
    out = _center(fn, center, views)
    if out.requires_grad or out.grad_fn is not None:
        raise Fail("the returned center requires grad", measured="requires_grad=True",
                   expected="a constant tensor")
    return "a constant tensor"


@center_checks.add(
    "float64 in, float64 out, to float64 precision",
    diagnosis="the computation drops to float32 somewhere (a .float(), or a float32 tensor made "
    "inside without dtype=)",
    hint="create helper tensors with the inputs' dtype and device",
)
def center_keeps_float64(fn):
    center = torch.full((3,), 1.0 + 2 ** -40, dtype=F64)
    views = [torch.full((2, 3), 1.0 + 2 ** -38, dtype=F64) for _ in range(2)]
    out = _center(fn, center, views, momentum=0.5)
    if out.dtype != F64:
        raise Fail(f"float64 inputs gave a {out.dtype} center", measured=out.dtype,
                   expected="torch.float64")
    expected = 0.5 * (1.0 + 2 ** -40) + 0.5 * (1.0 + 2 ** -38)
    if (out - expected).abs().max().item() > 1e-15:
        raise Fail("the value is off by more than float64 rounding",
                   measured=f"{out[0].item():.17f}", expected=f"{expected:.17f}")


@center_checks.add(
    "matches known answers",
    diagnosis="the new center differs from the reference on fixed inputs",
    hint="if the other checks pass, compare the axis of the mean and the momentum weights",
)
def center_known_answers(fn):
    for n, case in enumerate(load_cases("dino_center")):
        center = torch.tensor(case["center"], dtype=F64)
        views = [torch.tensor(x, dtype=F64) for x in case["teacher_out"]]
        out = _center(fn, center, views, momentum=case["momentum"])
        want = torch.tensor(case["new_center"], dtype=F64)
        if not torch.allclose(out, want, rtol=1e-9, atol=1e-12):
            raise Fail(f"case {n} (momentum {case['momentum']}): wrong center",
                       measured=[round(x, 6) for x in out.tolist()],
                       expected=[round(x, 6) for x in want.tolist()])
    return "all stored cases match"


# -- ema_update ----------------------------------------------------------------------------------


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
        return ("the teacher's parameters did not change: the new values were never written into "
                "them (assigned to a local name, or a new model built and returned?)")
    if "unchanged" in kinds:
        return ("some parameters were skipped (" + ", ".join(wrong) + "): every parameter of "
                "the teacher, biases and bare nn.Parameters included, follows the student")
    return None


@ema_checks.add(
    "changes only the teacher",
    diagnosis="the student was changed: the arguments are swapped (the student is pulled toward "
    "the teacher) or an in-place operation wrote into the student",
    hint="ema_update(teacher, student, momentum) writes into the teacher only",
)
def ema_student_untouched(fn):
    teacher, student = _pair(320)
    s0 = _snapshot(student)
    _ema(fn, teacher, student, 0.9)
    changed = [k for k, v in student.state_dict(keep_vars=True).items()
               if not torch.equal(v.detach(), s0[k])]
    if changed:
        shared = _shared(teacher, student)
        raise Fail(f"the student's {', '.join(changed)} changed"
                   + (f", and the teacher's {', '.join(shared)} now share its memory"
                      if shared else ""),
                   diagnosis=_SHARED if shared else None,
                   hint=_SHARED_HINT if shared else None,
                   measured="changed", expected="the student exactly as it was")
    return "student untouched"


@ema_checks.add(
    "moves every parameter to momentum * teacher + (1 - momentum) * student",
    diagnosis="the teacher's parameters are not the momentum average of teacher and student",
    hint="for each pair of parameters: teacher = momentum * teacher + (1 - momentum) * student",
)
def ema_formula(fn):
    for m in (0.9, 0.5, 0.996):
        teacher, student = _pair(300 + int(1000 * m))
        t0, s0 = _snapshot(teacher), _snapshot(student)
        _ema(fn, teacher, student, m)
        wrong, kinds = _compare_params(teacher, t0, s0, m)
        if wrong:
            # Values equal to the student's *and* the student's very memory: `.data` aliasing,
            # not a copy.
            aliased = kinds == {"copied"} and set(wrong) <= set(_shared(teacher, student))
            raise Fail(
                f"momentum {m}: {len(wrong)} of {len(_params(teacher))} parameters are wrong "
                f"({', '.join(wrong)})" + (", and they share memory with the student"
                                           if aliased else ""),
                diagnosis=_SHARED if aliased else _ema_diagnosis(wrong, kinds,
                                                                 len(_params(teacher))),
                hint=_SHARED_HINT if aliased else None,
                measured=f"{teacher.head.bias.detach().tolist()} (head.bias)",
                expected=f"{(m * t0['head.bias'] + (1 - m) * s0['head.bias']).tolist()}",
            )
    return "exact for momentum 0.9, 0.5 and 0.996, all 7 parameters"


@ema_checks.add(
    "momentum 1 leaves the teacher as it is; momentum 0 copies the student",
    diagnosis="the limits are wrong: momentum is the weight the teacher keeps of itself",
    hint="momentum = 1 is a frozen teacher; momentum = 0 makes the teacher the student",
)
def ema_limits(fn):
    for m in (1.0, 0.0):
        teacher, student = _pair(310)
        t0, s0 = _snapshot(teacher), _snapshot(student)
        _ema(fn, teacher, student, m)
        wrong, kinds = _compare_params(teacher, t0, s0, m)
        if not wrong:
            continue
        if m == 1.0 and kinds == {"copied"}:
            diagnosis = ("momentum 1 copied the student: the momentum weights are swapped, or "
                         "the momentum is ignored")
        elif m == 0.0 and kinds == {"unchanged"}:
            diagnosis = ("momentum 0 left the teacher as it was: the momentum weights are "
                         "swapped, or the new values never reach the teacher")
        else:
            diagnosis = _ema_diagnosis(wrong, kinds, len(_params(teacher)))
        raise Fail(f"momentum {m:g}: wrong parameters ({', '.join(wrong)})", diagnosis=diagnosis)
    return "momentum 1 keeps, momentum 0 copies"


@ema_checks.add(
    "updates the teacher's own parameters in place",
    diagnosis="the teacher's Parameter objects were replaced: anything holding them (an "
    "optimizer, hooks, another reference to the model) no longer sees the teacher",
    hint="write into the existing parameters (p.mul_(...).add_(...) or p.copy_(...)) under "
    "torch.no_grad()",
)
def ema_in_place(fn):
    teacher, student = _pair(330)
    ids = {k: id(v) for k, v in _params(teacher).items()}
    _ema(fn, teacher, student, 0.5)
    replaced = [k for k, v in _params(teacher).items() if ids.get(k) != id(v)]
    if replaced:
        raise Fail(f"{', '.join(replaced)} are new objects after the update",
                   measured="new Parameter objects", expected="the same objects, new values")
    return "same Parameter objects, new values"


@ema_checks.add(
    "the teacher does not share memory with the student",
    diagnosis=_SHARED,
    hint=_SHARED_HINT,
)
def ema_no_aliasing(fn):
    teacher, student = _pair(340)
    _ema(fn, teacher, student, 0.0)
    shared = _shared(teacher, student)
    if shared:
        raise Fail(f"{', '.join(shared)} share memory with the student after the update",
                   measured="shared storage", expected="separate tensors")
    t1 = _snapshot(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)  # an optimizer step on the student
    moved = [k for k, v in _params(teacher).items() if not torch.equal(v.detach(), t1[k])]
    if moved:
        raise Fail(f"an update of the student moved the teacher's {', '.join(moved)}",
                   measured="teacher moved", expected="teacher unchanged")
    return "separate storage"


@ema_checks.add(
    "leaves no autograd history on the teacher",
    diagnosis="the update is recorded by autograd: the teacher's parameters now have a "
    "grad_fn (or started requiring grad), so the teacher becomes part of the student's graph",
    hint="wrap the update in torch.no_grad()",
)
def ema_no_history(fn):
    teacher, student = _pair(350)
    _ema(fn, teacher, student, 0.9)
    bad = [k for k, p in _params(teacher).items()
           if p.grad_fn is not None or p.requires_grad or not p.is_leaf]
    if bad:
        raise Fail(f"{', '.join(bad)} carry autograd history or require grad after the update",
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
    hint="wrap the update in torch.no_grad()",
)
def ema_teacher_requires_grad(fn):
    teacher, student = _pair(360, teacher_grad=True)
    t0, s0 = _snapshot(teacher), _snapshot(student)
    _ema(fn, teacher, student, 0.75)
    wrong, kinds = _compare_params(teacher, t0, s0, 0.75)
    if wrong:
        raise Fail(f"wrong parameters: {', '.join(wrong)}",
                   diagnosis=_ema_diagnosis(wrong, kinds, len(_params(teacher))))
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
    b0 = {k: v.clone() for k, v in teacher.named_buffers()}
    _ema(fn, teacher, student, 0.9)
    changed = [k for k, v in teacher.named_buffers() if not torch.equal(v, b0[k])]
    if changed:
        raise Fail(f"the teacher's buffers changed: {', '.join(changed)}",
                   measured="changed", expected="unchanged")
    return "running_mean, running_var and num_batches_tracked untouched"


@ema_checks.add(
    "float64 models stay float64, to float64 precision",
    diagnosis="the update drops to float32 somewhere (a .float(), or a float32 tensor made "
    "inside without dtype=)",
    hint="do the arithmetic on the parameters themselves",
)
def ema_float64(fn):
    teacher, student = _pair(380)
    with torch.no_grad():
        for p in teacher.parameters():
            p.fill_(1.0)
        for p in student.parameters():
            p.fill_(1.0 + 2 ** -30)
    _ema(fn, teacher, student, 0.5)
    for name, p in _params(teacher).items():
        if p.dtype != F64:
            raise Fail(f"{name} became {p.dtype}", measured=p.dtype, expected="torch.float64")
        if (p.detach() - (1.0 + 2 ** -31)).abs().max().item() > 1e-15:
            raise Fail(f"{name} is off by more than float64 rounding",
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
    _ema(fn, teacher, student, 0.5)
    if not torch.allclose(teacher.head.weight, torch.full_like(teacher.head.weight, 0.5)):
        raise Fail("the large layer's weights are not the momentum average",
                   diagnosis="the teacher's parameters are not the momentum average of teacher "
                   "and student")
    return f"{sum(p.numel() for p in teacher.parameters()):,} parameters"
