"""What the drill-04 check modules share: the float64 dtype. (That a function leaves the
caller's lists of views, and every tensor in them, as they were is checked by sandbox.call.)"""

from __future__ import annotations

import torch

F64 = torch.float64
