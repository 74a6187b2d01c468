"""Checks for drill 09: contrastive losses at scale.

`chunked` holds the checks of `chunked_nt_xent_loss` (NT-Xent in bounded memory), `gather` those
of `gather_with_grad` (an all-gather that gradients flow back through) and `clip` those of
`distributed_clip_loss` (each rank's local rows of the global CLIP logits). The distributed
names are checked in a simulated process group (`_world`: ranks as threads, torch.distributed's
collectives stood in for), so that the checks run inside the grader's sandbox; the notebook and
tests/test_distributed.py run the same code in real gloo processes. Memory is measured in bytes
(`_memory`).

The modules are imported in the order their checklists register in.
"""

from . import chunked, gather, clip  # noqa: F401, I001  (the order sets the registration order)
