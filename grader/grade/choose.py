"""Which drill a notebook is, and so which graded names it is graded on."""

from __future__ import annotations

import ast
import re
from pathlib import Path

# -- which names a notebook is graded on ------------------------------------------------------

_CHECK_CALL = re.compile(r"""grader\.(?:check|ready)\(\s*["'](\w+)["']""")
_CLOCK_CALL = re.compile(r"""clock\.start\(\s*["']([\w-]+)["']""")
_DRILL_ARG = re.compile(r"""drill\s*=\s*["']([\w-]+)["']""")


def _defined(source: str) -> set[str]:
    """Top-level names a cell defines (def, class, assignment), or none if it does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def which_drills(nb, path: Path, registry) -> list[str]:
    """The drills this notebook is, from the strongest evidence it gives.

    The clock call, the file name (`02_simclr_bob.ipynb`) and an explicit `drill=` say it
    outright. Failing those, the notebook is the drill that grades the most of the names it
    uses in grader.check/ready or defines (a drill-02 notebook also defines drill 01's
    nt_xent_loss, but four of 02's names); a tie keeps every drill tied.
    """
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    source = "\n".join(cells)
    known = set(registry.drills())
    said = {d for d in _CLOCK_CALL.findall(source) + _DRILL_ARG.findall(source) if d in known}
    said |= {d for d in known if path.stem.startswith(d)}
    if said:
        return sorted(said)
    used = set(_CHECK_CALL.findall(source)).union(*(_defined(c) for c in cells))
    counts = {d: len(used & set(registry.in_drill(d))) for d in known}
    best = max(counts.values(), default=0)
    return sorted(d for d, n in counts.items() if n == best and n > 0)


def grading_plan(nb, path: Path, registry) -> list[tuple[str, str]]:
    """(graded name, drill) for every graded name of the notebook's drills, in drill order."""
    return [(name, drill) for drill in which_drills(nb, path, registry)
            for name in registry.in_drill(drill)]


def expected_names(nb, path: Path, registry) -> list[str]:
    """The graded names this notebook should define (may be empty)."""
    return [name for name, _drill in grading_plan(nb, path, registry)]
