"""Which graded names a notebook is graded on."""

from __future__ import annotations

import re
from pathlib import Path

# -- which names a notebook is graded on ------------------------------------------------------

_CHECK_CALL = re.compile(r"""grader\.(?:check|ready)\(\s*["'](\w+)["']""")
_CLOCK_CALL = re.compile(r"""clock\.start\(\s*["']([\w-]+)["']""")


def expected_names(nb, path: Path, registry) -> list[str]:
    """The graded names this notebook should define, in registry order (may be empty)."""
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    wanted = {m for m in _CHECK_CALL.findall(source) if m in registry}
    drills = set(_CLOCK_CALL.findall(source))
    drills |= {cl.drill for cl in registry.values() if path.stem.startswith(cl.drill)}
    wanted |= {name for name, cl in registry.items() if cl.drill in drills}
    return [name for name in registry if name in wanted]


