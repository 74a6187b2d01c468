"""Classic mistakes in DINO's loss, center update and EMA teacher, each with its diagnosis."""

import copy

import torch
import torch.nn.functional as F

from tests.botches import Botch

# -- dino_loss -------------------------------------------------------------------------------------


def _pairs(student_out, teacher_out, center, ts, tt, *, skip_same=True, teacher_fn=None,
           student_fn=None, reduce_k="sum", reduce_b="mean", reduce_pairs="mean"):
    """A configurable DINO loss: each keyword switches on one mistake."""
    teacher_fn = teacher_fn or (lambda t: F.softmax((t - center) / tt, dim=-1).detach())
    student_fn = student_fn or (lambda s: F.log_softmax(s / ts, dim=-1))
    targets = [teacher_fn(t) for t in teacher_out]
    log_probs = [student_fn(s) for s in student_out]
    terms = []
    for i, p in enumerate(targets):
        for j, log_q in enumerate(log_probs):
            if skip_same and i == j:
                continue
            ce = -(p * log_q)
            ce = ce.sum(-1) if reduce_k == "sum" else ce.mean(-1)
            terms.append(ce.mean() if reduce_b == "mean" else ce.sum())
    total = torch.stack(terms).sum()
    return total / len(terms) if reduce_pairs == "mean" else total


def no_centering(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp,
                  teacher_fn=lambda x: F.softmax(x / teacher_temp, dim=-1).detach())


def center_on_student(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp,
                  teacher_fn=lambda x: F.softmax(x / teacher_temp, dim=-1).detach(),
                  student_fn=lambda x: F.log_softmax((x - c) / student_temp, dim=-1))


def center_on_both(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp,
                  student_fn=lambda x: F.log_softmax((x - c) / student_temp, dim=-1))


def center_added(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp,
                  teacher_fn=lambda x: F.softmax((x + c) / teacher_temp, dim=-1).detach())


def center_after_temperature(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp,
                  teacher_fn=lambda x: F.softmax(x / teacher_temp - c, dim=-1).detach())


def center_from_student_batch(s, t, c, student_temp=0.1, teacher_temp=0.04):
    # Ignores the running center and centres the teacher with the student's batch mean.
    mean = torch.cat(s).mean(0).detach()
    return _pairs(s, t, c, student_temp, teacher_temp,
                  teacher_fn=lambda x: F.softmax((x - mean) / teacher_temp, dim=-1).detach())


def temperatures_swapped(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, teacher_temp, student_temp)


def temperature_multiplied(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp,
                  teacher_fn=lambda x: F.softmax((x - c) * teacher_temp, dim=-1).detach(),
                  student_fn=lambda x: F.log_softmax(x * student_temp, dim=-1))


def teacher_temp_ignored(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, 0.04)


def student_temp_ignored(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, 0.1, teacher_temp)


def same_view_pairs_included(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp, skip_same=False)


def pairs_summed(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp, reduce_pairs="sum")


def wrong_pair_count(s, t, c, student_temp=0.1, teacher_temp=0.04):
    # Skips a view with itself, but divides by every pair.
    return _pairs(s, t, c, student_temp, teacher_temp) * (len(s) - 1) / len(s)


def local_views_dropped(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s[: len(t)], t, c, student_temp, teacher_temp)


def teacher_not_detached(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp,
                  teacher_fn=lambda x: F.softmax((x - c) / teacher_temp, dim=-1))


def teacher_softmax_over_batch(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp,
                  teacher_fn=lambda x: F.softmax((x - c) / teacher_temp, dim=0).detach())


def student_softmax_over_batch(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp,
                  student_fn=lambda x: F.log_softmax(x / student_temp, dim=0))


def mean_over_k(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp, reduce_k="mean")


def batch_summed(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp, reduce_b="sum")


def log_of_softmax(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs(s, t, c, student_temp, teacher_temp,
                  student_fn=lambda x: torch.log(F.softmax(x / student_temp, dim=-1)))


def softmax_not_log_softmax(s, t, c, student_temp=0.1, teacher_temp=0.04):
    # -sum p * q with the student's probabilities q, not their logarithm.
    return _pairs(s, t, c, student_temp, teacher_temp,
                  student_fn=lambda x: F.softmax(x / student_temp, dim=-1))


def divided_by_student_views(s, t, c, student_temp=0.1, teacher_temp=0.04):
    # Skips a view with itself, but divides by the number of student views only.
    return _pairs(s, t, c, student_temp, teacher_temp, reduce_pairs="sum") / len(s)


def casts_to_float32(s, t, c, student_temp=0.1, teacher_temp=0.04):
    return _pairs([x.float() for x in s], [x.float() for x in t], c.float(), student_temp,
                  teacher_temp)


def centers_in_place(s, t, c, student_temp=0.1, teacher_temp=0.04):
    for x in t:
        x.data.sub_(c)  # writes into the caller's teacher outputs
    return _pairs(s, t, torch.zeros_like(c), student_temp, teacher_temp)


# -- update_center ---------------------------------------------------------------------------------


@torch.no_grad()
def weights_swapped(center, teacher_out, momentum=0.9):
    return (1 - momentum) * center + momentum * torch.cat(teacher_out).mean(0)


@torch.no_grad()
def first_view_only(center, teacher_out, momentum=0.9):
    return momentum * center + (1 - momentum) * teacher_out[0].mean(0)


@torch.no_grad()
def views_summed(center, teacher_out, momentum=0.9):
    return momentum * center + (1 - momentum) * sum(t.mean(0) for t in teacher_out)


@torch.no_grad()
def mean_over_outputs(center, teacher_out, momentum=0.9):
    return momentum * center + (1 - momentum) * torch.cat(teacher_out).mean(1)


@torch.no_grad()
def no_momentum(center, teacher_out, momentum=0.9):
    return torch.cat(teacher_out).mean(0)


@torch.no_grad()
def momentum_hard_coded(center, teacher_out, momentum=0.9):
    return 0.9 * center + 0.1 * torch.cat(teacher_out).mean(0)


def with_gradient_history(center, teacher_out, momentum=0.9):
    # No torch.no_grad(): what happens when the center is fed from outputs that carry a graph,
    # such as the student's.
    return momentum * center + (1 - momentum) * torch.cat(teacher_out).mean(0)


@torch.no_grad()
def center_in_place(center, teacher_out, momentum=0.9):
    return center.mul_(momentum).add_((1 - momentum) * torch.cat(teacher_out).mean(0))


@torch.no_grad()
def keepdim_mean(center, teacher_out, momentum=0.9):
    mean = torch.cat(teacher_out).mean(0, keepdim=True)
    return momentum * center.reshape(1, -1) + (1 - momentum) * mean


# -- ema_update ------------------------------------------------------------------------------------


@torch.no_grad()
def ema_weights_swapped(teacher, student, momentum):
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        pt.mul_(1 - momentum).add_(momentum * ps)


@torch.no_grad()
def ema_updates_student(teacher, student, momentum):
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        ps.mul_(momentum).add_((1 - momentum) * pt)


@torch.no_grad()
def ema_copies_student(teacher, student, momentum):
    teacher.load_state_dict(student.state_dict())


@torch.no_grad()
def ema_shares_student_storage(teacher, student, momentum):
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        ps.data.mul_(1 - momentum).add_(momentum * pt.data)
        pt.data = ps.data


@torch.no_grad()
def ema_data_aliased(teacher, student, momentum):
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        pt.data = ps.data if momentum < 1 else pt.data


def ema_without_no_grad(teacher, student, momentum):
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        pt.mul_(momentum).add_((1 - momentum) * ps)


@torch.no_grad()
def ema_weights_only(teacher, student, momentum):
    for mt, ms in zip(teacher.modules(), student.modules()):
        if isinstance(mt, torch.nn.Linear):
            mt.weight.mul_(momentum).add_((1 - momentum) * ms.weight)


@torch.no_grad()
def ema_returns_early(teacher, student, momentum):
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        pt.mul_(momentum).add_((1 - momentum) * ps)
        return


@torch.no_grad()
def ema_local_rebinding(teacher, student, momentum):
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        pt = momentum * pt + (1 - momentum) * ps  # noqa: PLW2901  (only the name moves)


@torch.no_grad()
def ema_includes_buffers(teacher, student, momentum):
    student_state = student.state_dict()
    for name, value in teacher.state_dict().items():
        value.mul_(momentum).add_((1 - momentum) * student_state[name])


@torch.no_grad()
def ema_float_buffers(teacher, student, momentum):
    student_state = student.state_dict()
    for name, value in teacher.state_dict().items():
        if value.is_floating_point():
            value.mul_(momentum).add_((1 - momentum) * student_state[name])


@torch.no_grad()
def ema_new_teacher(teacher, student, momentum):
    fresh = copy.deepcopy(teacher)
    for pt, ps in zip(fresh.parameters(), student.parameters()):
        pt.mul_(momentum).add_((1 - momentum) * ps)
    return fresh


@torch.no_grad()
def ema_replaces_parameters(teacher, student, momentum):
    for (name, pt), ps in zip(list(teacher.named_parameters()), student.parameters()):
        *path, attr = name.split(".")
        owner = teacher.get_submodule(".".join(path))
        setattr(owner, attr, torch.nn.Parameter(momentum * pt + (1 - momentum) * ps,
                                                requires_grad=pt.requires_grad))


@torch.no_grad()
def ema_elementwise(teacher, student, momentum):
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        flat_t, flat_s = pt.view(-1), ps.view(-1)
        for i in range(flat_t.numel()):
            flat_t[i] = momentum * flat_t[i] + (1 - momentum) * flat_s[i]


@torch.no_grad()
def ema_in_float32(teacher, student, momentum):
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        pt.copy_(momentum * pt.float() + (1 - momentum) * ps.float())


L, C, E = "dino_loss", "update_center", "ema_update"

CATALOGUE = [
    Botch("no centering", L, no_centering, "the center argument is ignored"),
    Botch("the center subtracted from the student", L, center_on_student,
          "subtracted from the student instead of the teacher"),
    Botch("the center subtracted from both", L, center_on_both,
          "as well as the teacher"),
    Botch("the center added", L, center_added, "added to the teacher instead of subtracted"),
    Botch("the center subtracted after the temperature", L, center_after_temperature,
          "after dividing by teacher_temp"),
    Botch("the teacher centred with the student's batch mean", L, center_from_student_batch,
          "the center argument is ignored"),
    Botch("temperatures swapped", L, temperatures_swapped, "the temperatures are swapped"),
    Botch("temperatures multiply", L, temperature_multiplied, "multiplied by"),
    Botch("teacher_temp hard-coded", L, teacher_temp_ignored, "teacher_temp is ignored"),
    Botch("student_temp hard-coded", L, student_temp_ignored, "student_temp is hard-coded"),
    Botch("same-view pairs included", L, same_view_pairs_included,
          "same-view pairs are included"),
    Botch("pair losses summed", L, pairs_summed, "summed instead of averaged over the pairs"),
    Botch("divided by every pair", L, wrong_pair_count, "divided by the number of all pairs"),
    Botch("local views dropped", L, local_views_dropped, "the local views are left out"),
    Botch("teacher not detached", L, teacher_not_detached, "not detached"),
    Botch("teacher softmax over the batch", L, teacher_softmax_over_batch,
          "teacher's softmax runs over the batch axis"),
    Botch("student log-softmax over the batch", L, student_softmax_over_batch,
          "student's log-softmax runs over the batch axis"),
    Botch("mean over K instead of sum", L, mean_over_k, "averaged over the K dimensions"),
    Botch("batch summed", L, batch_summed, "summed over the batch"),
    Botch("log of softmax", L, log_of_softmax, "underflows"),
    Botch("softmax instead of log_softmax on the student", L, softmax_not_log_softmax,
          "softmax instead of log_softmax"),
    Botch("divided by the number of student views", L, divided_by_student_views,
          "divided by the number of student views"),
    Botch("float32 inside", L, casts_to_float32, "drops to float32"),
    Botch("centres the teacher outputs in place", L, centers_in_place, "in-place"),
    Botch("momentum weights swapped", C, weights_swapped, "momentum weights are swapped"),
    Botch("first view only", C, first_view_only, "only the first teacher view"),
    Botch("views summed", C, views_summed, "views are summed"),
    Botch("mean over the K outputs", C, mean_over_outputs, "wrong axis"),
    Botch("no momentum", C, no_momentum, "the old center is dropped"),
    Botch("momentum hard-coded", C, momentum_hard_coded, "momentum is hard-coded"),
    Botch("center computed with gradient tracking (as from student outputs)", C,
          with_gradient_history, "carries autograd history"),
    Botch("center updated in place", C, center_in_place, "in-place"),
    Botch("keepdim mean changes the center's shape", C, keepdim_mean, "wrong shape"),
    Botch("EMA weights swapped", E, ema_weights_swapped, "momentum weights are swapped"),
    Botch("student pulled toward the teacher", E, ema_updates_student, "the student was changed"),
    Botch("student copied (momentum ignored)", E, ema_copies_student, "the student is copied"),
    Botch(".data rebound to the student's storage", E, ema_shares_student_storage,
          "share storage with the student"),
    Botch(".data aliased to the student", E, ema_data_aliased, "share storage with the student"),
    Botch("no torch.no_grad()", E, ema_without_no_grad, "recorded by autograd"),
    Botch("weights only, biases skipped", E, ema_weights_only, "some parameters were skipped"),
    Botch("return inside the loop", E, ema_returns_early, "some parameters were skipped"),
    Botch("new values bound to a local name", E, ema_local_rebinding,
          "did not change: the new values were never written"),
    Botch("state_dict with the integer counter", E, ema_includes_buffers, "buffers"),
    Botch("float buffers averaged too", E, ema_float_buffers, "buffers were averaged"),
    Botch("returns a new teacher", E, ema_new_teacher, "did not change"),
    Botch("Parameter objects replaced", E, ema_replaces_parameters, "were replaced"),
    Botch("element-by-element Python loop", E, ema_elementwise, "far too slow"),
    Botch("float32 arithmetic", E, ema_in_float32, "drops to float32"),
]

# Pasted into the stub's first graded cell by tests/test_notebooks.py, as a learner would write it.
LEARNER_PATH = {
    "solution": "04_dino",
    "name": "same-view pairs included",
    "graded_name": "dino_loss",
    "expect": "same-view pairs are included",
    "source": '''
def dino_loss(student_out, teacher_out, center, student_temp=0.1, teacher_temp=0.04):
    losses = []
    for t in teacher_out:
        target = F.softmax((t - center) / teacher_temp, dim=-1).detach()
        for s in student_out:
            losses.append(-(target * F.log_softmax(s / student_temp, dim=-1)).sum(-1).mean())
    return sum(losses) / len(losses)
''',
}
