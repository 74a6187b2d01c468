"""Test-wide settings, for `make test` and for `pytest --nbval solutions/` alike."""

import os

# Kernels started by the tests (nbval, nbclient) inherit this: no drill-clock state files are
# written beside the notebooks while they are validated.
os.environ.setdefault("CONTRASTIVE_DRILLS_CLOCK", "off")

# The grader's checks run tiny networks: one thread is as fast as two, and on a busy machine a
# thread pool waiting for a free core makes them many times slower.
import torch  # noqa: E402

torch.set_num_threads(1)
