"""Test-wide settings, for `make test` and for `pytest --nbval solutions/` alike."""

import os

# Kernels started by the tests (nbval, nbclient) inherit this: no drill-clock state files are
# written beside the notebooks while they are validated.
os.environ.setdefault("CONTRASTIVE_DRILLS_CLOCK", "off")
