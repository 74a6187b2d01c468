"""Drill 04 from the learner's side: a learner's own correct code, written differently from the
solution, passes every check, and pasted into the stub runs the demo and clears its bars."""



SOLUTION = "04_dino"
# What the demo prints once its claims hold (it asserts them first).
DEMO_SAYS = r"asserted: DINO.s teacher beats its random initialisation"

# Correct answers unlike the solution's: all pairs at once with einsum and a mask, a running sum
# and torch.lerp for the center, Tensor.lerp_ over named parameters for the teacher.
LEARNER = {
    "dino_loss": '''
import torch


def dino_loss(student_out, teacher_out, center, student_temp=0.1, teacher_temp=0.04):
    with torch.no_grad():
        p = torch.stack([((t - center) / teacher_temp).softmax(-1) for t in teacher_out])
    log_q = torch.stack([(s / student_temp).log_softmax(-1) for s in student_out])
    ce = -torch.einsum("gbk,vbk->gv", p, log_q) / p.shape[1]
    keep = torch.ones_like(ce, dtype=torch.bool)
    same = torch.arange(len(teacher_out))
    keep[same, same] = False
    return ce[keep].mean()
''',
    "update_center": '''
import torch


def update_center(center, teacher_out, momentum=0.9):
    total = sum(t.detach().sum(dim=0) for t in teacher_out)
    count = sum(t.shape[0] for t in teacher_out)
    return torch.lerp(total / count, center, momentum)
''',
    "ema_update": '''
import torch


@torch.no_grad()
def ema_update(teacher, student, momentum):
    source = dict(student.named_parameters())
    for name, p in teacher.named_parameters():
        p.lerp_(source[name], 1.0 - momentum)
''',
}
DEFINES = {name: f"def {name}" for name in LEARNER}
