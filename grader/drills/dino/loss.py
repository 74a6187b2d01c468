"""Checks for `dino_loss` (drill 04): the value on inputs whose answer has a closed form (a
uniform student costs log K, one-hot teachers against students with known log-probabilities), the
center subtracted from the teacher only, both temperatures applied the right way, the mean over
the right view pairs, no gradient to the teacher or the center, finite values at extremes, float64
precision, and stored known answers.
"""

from __future__ import annotations

import math

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import randn as _randn
from ...sandbox import Fail, call, scalar
from . import _loss_mistakes as M
from ._common import F64
from ._loss_inputs import _close, _find, _loss, _OneHotCase, _rises_with, _student_trend

loss_checks = checklist(
    "dino_loss",
    drill="04_dino",
    smoke=lambda fn: fn([torch.zeros(1, 3)] * 3, [torch.zeros(1, 3)] * 2, torch.zeros(3)),
)


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
    hint="subtract the center into a new tensor rather than in place, and never modify the "
    "lists you are given",
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
    hint="for each sample, take the cross-entropy between the teacher's and the student's "
    "distributions, summed over the K dimensions, then average over the batch",
)
def uniform_student(fn):
    b, k = 3, 5
    s = [torch.zeros(b, k) for _ in range(3)]
    t = [_randn(b, k, seed=50 + i) * 2 for i in range(2)]
    value = _loss(fn, s, t, torch.zeros(k)).item()
    expected = math.log(k)
    if _close(value, expected, rel=1e-5):
        return f"{value:.5f} = log {k}"
    g, v = 2, 3
    pairs = g * v - g
    signatures = [
        (math.log(k) / k, M.MEAN_OVER_K),
        (k / b * math.log(k), M.TEACHER_OVER_BATCH),
        (math.log(b), M.STUDENT_OVER_BATCH),
        (-1 / k, M.STUDENT_SOFTMAX),  # -sum_k p_k * (1/K): probabilities, not their logarithm
        (b * math.log(k), M.BATCH_SUMMED),
        (pairs * math.log(k), M.PAIRS_SUMMED),
        (pairs / (g * v) * math.log(k), M.ALL_PAIRS_DIVISOR),
        (pairs / v * math.log(k), M.BY_STUDENT_VIEWS),
        (pairs / g * math.log(k), M.BY_TEACHER_VIEWS),
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
    value, moved, mistake = _centering_probe(fn)
    if mistake is False:
        return f"{value:.6f} with the center = {moved:.6f} with it moved into the teacher outputs"
    raise Fail(
        "moving the center into the teacher outputs (t - c with center 0) changed the loss",
        diagnosis=mistake,
        measured=f"{value:.6f}",
        expected=f"{moved:.6f}",
    )


def _centering_probe(fn):
    """(value, value with the center moved into the teacher outputs, mistake): the mistake is
    False when the two agree, else the centering mistake whose value it is (None: unknown)."""
    s = [_randn(5, 6, seed=100 + j, dtype=F64) for j in range(3)]
    t = [_randn(5, 6, seed=110 + i, dtype=F64) for i in range(2)]
    c = _randn(6, seed=120, dtype=F64)
    zero = torch.zeros(6, dtype=F64)
    tt = 0.07
    value = _loss(fn, s, t, c, teacher_temp=tt).item()
    moved = _loss(fn, s, [x - c for x in t], zero, teacher_temp=tt).item()
    if _close(value, moved, rel=1e-9):
        return value, moved, False

    def alt(student, teacher):
        return _loss(fn, student, teacher, zero, teacher_temp=tt).item()

    signatures = [
        (alt(s, t), _CENTER_IGNORED),
        (alt([x - c for x in s], t), _CENTER_ON_STUDENT),
        (alt([x - c for x in s], [x - c for x in t]), _CENTER_ON_BOTH),
        (alt(s, [x + c for x in t]), "the center is added to the teacher instead of subtracted"),
        (alt(s, [x - tt * c for x in t]), "the center is subtracted after dividing by "
         "teacher_temp: it must be subtracted from the raw teacher outputs first"),
    ]
    return value, moved, _find(value, signatures, rel=1e-9)


_CENTER_IGNORED = ("the center argument is ignored: no centering, so nothing stops one dimension "
                   "from dominating the teacher")
_CENTER_ON_STUDENT = "the center is subtracted from the student instead of the teacher"
_CENTER_ON_BOTH = ("the center is subtracted from the student as well as the teacher: only the "
                   "teacher is centred")


@loss_checks.add(
    "averages over every (teacher view, student view) pair except a view with itself",
    diagnosis="the loss is not the mean over the right set of view pairs",
    hint="pair every teacher view with every student view except the same view, and divide "
    "the sum by the number of pairs you added",
)
def pairs_counted(fn):
    case = _OneHotCase([[0, 1], [2, 3]], 4, 4, seed=60)
    value = _loss(fn, case.student, case.teacher, case.center).item()
    expected = case.average()
    if _close(value, expected):
        return f"{value:.5f}, the mean of 6 pairs (2 teacher views x 4 student views - 2)"
    mistake = case.diagnose(value, 0.04)
    raise Fail(
        f"2 one-hot teacher views, 4 student views with known probabilities gave {value:.6f}"
        + ("" if mistake else ", the value of none of the known pairing mistakes"),
        diagnosis=mistake,
        measured=f"{value:.6f}",
        expected=f"{expected:.6f} (the mean of the 6 pairs with i != j)",
        conclusive=mistake is not None,
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
        # Wrong with the default temperatures and no known signature: the cause may lie
        # anywhere. Right by default but wrong with student_temp=0.2: the temperature.
        mistake = case.diagnose(value, tt)
        raise Fail(
            f"student logits = student_temp * log(q), one-hot teacher, {where}: {value:.6f}",
            diagnosis=mistake,
            measured=f"{value:.6f}",
            expected=f"{expected:.6f} (the cross-entropy against q itself)",
            conclusive=mistake is not None or bool(kwargs),
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
    falling = M.TEACHER_MULTIPLIED  # a falling loss: a sharper teacher for a higher teacher_temp
    if all(a > b for a, b in zip(losses, losses[1:])):
        _, student, signatures = _student_trend(fn)
        both = M.both(M.STUDENT_MULTIPLIED, M.TEACHER_MULTIPLIED)
        if any(m == both and all(_close(a, b) for a, b in zip(student, values))
               for values, m in signatures):
            falling = both  # the student is multiplied too: one mistake, made on both sides
    return _rises_with(temps, losses, "teacher_temp", falling=falling)


@loss_checks.add(
    "a lower student_temp sharpens the student",
    diagnosis="the student temperature is applied the wrong way",
    hint="divide the student's outputs by student_temp, never multiply them, before the "
    "log-softmax: a smaller temperature must give a sharper student",
)
def student_temperature_direction(fn):
    # A one-hot teacher whose class is also the student's argmax: a sharper student is rewarded.
    # A falling loss is named only where it matches a mistake's closed form: other mistakes (a
    # softmax over the wrong axis) make it fall as well.
    temps, losses, signatures = _student_trend(fn)
    return _rises_with(temps, losses, "student_temp", signatures)


@loss_checks.add(
    "sends no gradient to the teacher or the center",
    diagnosis="the teacher's targets are not detached: gradient flows into the teacher outputs",
    hint="detach the teacher's softmax targets (or compute them without autograd), so that no "
    "gradient flows into the teacher or the center",
)
def teacher_detached(fn):
    s = [_randn(4, 5, seed=130 + j).requires_grad_(True) for j in range(4)]
    t = [_randn(4, 5, seed=140 + i).requires_grad_(True) for i in range(2)]
    c = _randn(5, seed=150).requires_grad_(True)
    loss = _loss(fn, s, t, c)
    if not loss.requires_grad:
        raise Fail(
            "the loss does not require grad",
            diagnosis=M.STUDENT_DETACHED,
            hint="detach only the teacher's targets",
        )
    loss.backward()
    leaked = [f"teacher view {i}" for i, x in enumerate(t)
              if x.grad is not None and x.grad.abs().max() > 0]
    if leaked:
        raise Fail(f"a gradient reached {', '.join(leaked)}", measured="non-zero gradient",
                   expected="no gradient")
    if c.grad is not None and c.grad.abs().max() > 0:
        # A center that reaches the student (subtracted from it) gets a gradient that way: the
        # centering probe then names how the center is misused.
        _, _, mistake = _centering_probe(fn)
        if mistake is False:
            mistake = ("gradient flows into the center: the teacher's targets (centred) must be "
                       "a constant for the student")
        raise Fail(
            "a gradient reached the center" + ("" if mistake else ", and the value changes when "
                                               "the center is moved into the teacher outputs"),
            diagnosis=mistake,
            measured="non-zero gradient", expected="no gradient",
            conclusive=mistake is not None,
        )
    missing = [f"student view {j}" for j, x in enumerate(s)
               if x.grad is None or not torch.isfinite(x.grad).all() or x.grad.abs().max() == 0]
    if missing:
        # Exactly the local views (2, 3) or exactly the global ones (0, 1): left out of the pairs.
        left_out = {"student view 2, student view 3": M.LOCAL_LEFT_OUT,
                    "student view 0, student view 1": M.GLOBAL_LEFT_OUT}
        raise Fail(
            f"no useful gradient reached {', '.join(missing)}",
            diagnosis=left_out.get(", ".join(missing), "some student views are cut off from the "
                                   "loss (detached, or left out of the pairs)"),
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
    error = abs(out.item() - expected)
    if error > 1e-12 * max(1.0, expected):
        # Right to float32 precision: a float32 step inside. Further off: the value itself is
        # wrong, which the checks above name.
        rounding = error < 1e-5 * max(1.0, expected)
        raise Fail("the value is off by more than float64 rounding" if rounding else
                   f"the value is wrong by {error:.3g}, far more than any rounding",
                   measured=f"{out.item():.15f}", expected=f"{expected:.15f}",
                   conclusive=rounding)


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
        mistake = case.diagnose(value, 0.04)
        # Unknown, but right with local views and several samples: it is the small case.
        general = _OneHotCase([[0, 1], [2, 3]], 4, 4, seed=60)
        alone = mistake is None and _close(
            _loss(fn, general.student, general.teacher, general.center).item(), general.average())
        raise Fail("two views, one sample: wrong value", diagnosis=mistake,
                   measured=f"{value:.6f}", expected=f"{expected:.6f}",
                   conclusive=mistake is not None or alone)
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
            # A stored number says that the value is wrong, not why: the checks above do.
            raise Fail(f"{where}: wrong value", measured=f"{loss.item():.8f}",
                       expected=f"{case['loss']:.8f}", conclusive=False)
        if not loss.requires_grad:
            raise Fail("the loss does not require grad", diagnosis=M.STUDENT_DETACHED)
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
