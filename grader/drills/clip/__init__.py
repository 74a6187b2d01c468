"""Checks for drill 03 (CLIP, Radford et al. 2021): `clip_loss`, `LogitScale`, `zero_shot_classify`,
and the stretch names `ensemble_prompts` and `recall_at_k`.

One module per graded name: `loss` (clip_loss), `logit_scale` (LogitScale), `zero_shot`
(zero_shot_classify), `ensemble` (ensemble_prompts) and `recall` (recall_at_k); importing them,
in that order, registers their checklists.

As in drill 01, nothing here computes the answer the way a solution would. The checks use inputs
whose correct value has a closed form (collapsed towers, perfect pairs, a batch with a duplicated
caption, N = 1), properties every correct implementation has (symmetry under swapping the towers,
invariance to embedding lengths and to the order of the pairs, gradients), and known answers in
grader/data/clip_*.json. Where a wrong value has a
recognisable signature (2 log N, the loss at scale 1/s, the dot-product winner), the failure names
the mistake that produces it; a check that sees a mistake another check names (through the
probes in `_probes` and the diagnoses in `_signatures`) names it in the same words, and one whose
failure does not pin the cause is not conclusive, so that one mistake is one diagnosis. The
property laws that clip_loss shares with drill 01 come from grader/kit/laws.py, the mistakes
several drills name from grader/kit/mistakes.py.
"""

# The order of these imports is the order the checklists register in (not alphabetical).
from . import loss, logit_scale, zero_shot, ensemble, recall  # noqa: F401, I001
