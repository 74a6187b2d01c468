"""Checks for drill 04: DINO's `dino_loss`, `update_center` and `ema_update` (Caron et al. 2021).

The checks never compute the DINO loss the way a solution would. They use inputs whose correct
value has a closed form: a teacher so peaked that its target is exactly one-hot, and student
logits built as `student_temp * log(q)` so that the student's log-probabilities are exactly
`log(q)`; a uniform student, whose loss is log K whatever the teacher says. They compare the
learner's function with itself (moving the center into the teacher outputs must not change the
value) and with known answers stored in grader/data/dino_loss.json and dino_center.json. Where a
wrong value has a recognisable signature (log K / K, a mean over every view pair including a view
with itself, the momentum weights swapped) the failure names the mistake that produces it.

One module per graded name: `loss` (dino_loss), `center` (update_center) and `ema` (ema_update).
They are imported in that order, which is the order their checklists register in.
"""

from . import loss, center, ema  # noqa: F401, I001  (the order sets the registration order)
