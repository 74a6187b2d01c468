"""Checks for drill 05: MoCo's `KeyQueue` and `moco_loss` (He et al. 2019, arXiv 1911.05722).

`queue` holds the checks of the dictionary of negatives: a fixed-size first-in-first-out store of
keys, started from random unit vectors drawn from the caller's generator. `loss` holds those of
the contrastive loss against the queue: InfoNCE where each query's candidates are its own key
and every key of the queue. The loss checks never compute the loss as a solution would: they use
inputs with a closed form (every embedding equal: log(K+1); one-hot queries whose keys are
themselves and whose queue is at a known similarity), invariances and known answers stored in
grader/data/moco_loss.json; a wrong closed-form value is matched against what each classic
mistake gives, so that one mistake gets one diagnosis however many rows it turns red.

The modules are imported in the order their checklists register in.
"""

from . import queue, loss  # noqa: F401, I001  (the order sets the registration order)
