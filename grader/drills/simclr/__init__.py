"""Checks for drill 02 (SimCLR): `augment`, `SimCLRModel`, `train_simclr`, `linear_probe`.

None of these has one right output, so the checks test what every correct version does: an
augmentation changes an image but keeps it recognisable, a projection head is non-linear, a
training loop feeds the loss two views of the same samples and clears its gradients, a probe
learns from the training set only. One module per graded name (augment, model, train, probe);
importing them, in that order, registers their checklists in that order. To see inside
`train_simclr`, the checks trace it (grader/kit/trace.py) on a network of their own
(grader/kit/nets.py). Real images (64 handwritten digits) and the known answer for the probe live
in grader/data/simclr_*.json.
"""

from . import augment, model, train, probe  # noqa: F401, I001  (this order is the checklists')
