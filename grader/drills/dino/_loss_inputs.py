"""Inputs and closed-form answers for the `dino_loss` checks: one-hot teachers, students with
exactly known log-probabilities, the correct mean over view pairs and the values the classic wrong
reductions and temperature mistakes give, so that a wrong loss can be matched to its mistake.
"""

from __future__ import annotations

import math

import torch

from ...inputs import close
from ...inputs import gen as _gen
from ...inputs import randn as _randn
from ...sandbox import Fail, call, scalar
from . import _loss_mistakes as M
from ._common import F64


def _close(a, b, rel=1e-6, abs_=1e-9):  # tighter than the shared default: exact formulas
    return close(a, b, rel, abs_)


def _rises_with(temps, losses, name, signatures=(), falling=None):
    """Pass (with the values) when the loss rises steadily with the temperature. Otherwise name
    the mistake whose closed-form values (`signatures`: (values, mistake) pairs) the losses
    match; a flat loss means the argument is ignored, and a falling one `falling` (when given).
    Any other trend says only that something is wrong: the row then follows from the mistake
    another check names."""
    text = ", ".join(f"T={t}: {v:.4f}" for t, v in zip(temps, losses))
    if all(a < b for a, b in zip(losses, losses[1:])):
        return text
    diagnosis = next((mistake for values, mistake in signatures
                      if all(_close(a, b) for a, b in zip(losses, values))), None)
    if diagnosis is None and all(_close(a, losses[0]) for a in losses):
        diagnosis = f"{name} is ignored: the loss does not change with it"
    elif diagnosis is None and all(a > b for a, b in zip(losses, losses[1:])):
        diagnosis = falling
    raise Fail(f"the loss does not rise steadily with {name}: " + text,
               diagnosis=diagnosis, measured=text, expected=f"rising with {name}",
               conclusive=diagnosis is not None)


def _loss(fn, student, teacher, center, **temps):
    """Call dino_loss and insist on a finite scalar (sandbox.call checks that neither list, nor
    any view in it, was changed)."""
    return scalar(call(fn, student, teacher, center, **temps))


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
        """The mistake (or mistakes made together) whose closed-form value equals `value`."""
        ts, tt = self.ts, teacher_temp
        powers = [(1.0, None), (ts / tt, M.TEMPS_SWAPPED), (ts * ts, M.STUDENT_MULTIPLIED),
                  (ts, M.STUDENT_NOT_DIVIDED)]
        if ts != 0.1:
            powers.append((ts / 0.1, M.STUDENT_TEMP_HARD_CODED))
        # The teacher's target stays one-hot unless its logits are scaled *down*: multiplied by
        # teacher_temp, the margin becomes margin * teacher_temp and the target a soft one.
        teachers = [(None, None), (self.margin * tt, M.TEACHER_MULTIPLIED)]
        # Averaged over K instead of summed: every value K times smaller.
        scales = [(1.0, None), (1.0 / self.k, M.MEAN_OVER_K)]
        found = []  # every combination whose value it is; the fewest mistakes win
        for teacher_logit, teacher_mistake in teachers:
            for power, temperature_mistake in powers:
                for signature, pair_mistake in _pair_reductions(
                        self.table(power, teacher_logit), len(self.classes[0])):
                    for scale, k_mistake in scales:
                        if _close(value, scale * signature):
                            found.append([pair_mistake, k_mistake, temperature_mistake,
                                          teacher_mistake])
        if not found:
            return None
        fewest = min(sum(m is not None for m in mistakes) for mistakes in found)
        named = {M.both(*ms) for ms in found if sum(m is not None for m in ms) == fewest}
        # Two different mistakes give this very value on these inputs: it cannot tell which.
        return named.pop() if len(named) == 1 else None


def _student_trend(fn, temps=(0.05, 0.1, 0.3, 1.0), seed=90):
    """The loss at each student_temp for a one-hot teacher whose class is the student's argmax
    (a sharper student is rewarded), and the closed-form values the temperature mistakes give.
    The student's logits s are 0.1 * log(q) up to a constant per row, for q = softmax(s / 0.1),
    so that log_softmax(s / T) = log_softmax(0.1/T * log q)."""
    s = _randn(4, 6, seed=seed, dtype=F64)
    q = torch.softmax(s / 0.1, dim=1)
    classes = s.argmax(1).tolist()
    t, margin, tt = _onehot_teacher(classes, 6), 60.0, 0.04
    losses = [_loss(fn, [s] * 3, [t, t.clone()], torch.zeros(6, dtype=F64), student_temp=ts).item()
              for ts in temps]

    def ce(power, teacher_logit=None):
        return [_pair_ce(q, classes, power(ts), teacher_logit) for ts in temps]

    signatures = [
        (ce(lambda ts: 1.0), M.STUDENT_TEMP_HARD_CODED),
        (ce(lambda ts: 0.1 / tt), M.TEMPS_SWAPPED),
        (ce(lambda ts: 0.1), M.STUDENT_NOT_DIVIDED),
        (ce(lambda ts: 0.1 * ts), M.STUDENT_MULTIPLIED),
        (ce(lambda ts: 0.1 * ts, margin * tt), M.both(M.STUDENT_MULTIPLIED, M.TEACHER_MULTIPLIED)),
    ]
    return temps, losses, signatures


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
        (_mean(every), M.SAME_VIEW),
        (sum(right), M.PAIRS_SUMMED),
        (sum(right) / len(every), M.ALL_PAIRS_DIVISOR),
        (sum(right) / v, M.BY_STUDENT_VIEWS),
        (_mean([tab[i][i] for i in range(g)]), M.ONLY_SAME_VIEW),
        (b * _mean(right), M.BATCH_SUMMED),
    ]
    if g != v:
        found += [
            (sum(right) / g, M.BY_TEACHER_VIEWS),
            (_mean([tab[i][j] for i in range(g) for j in range(g) if i != j]), M.LOCAL_LEFT_OUT),
            (_mean([tab[i][j] for i in range(g) for j in range(g, v)]), M.GLOBAL_LEFT_OUT),
        ]
    return found
