"""The `grade` command: expand the paths, grade each notebook, print, exit."""

from __future__ import annotations

import sys
from pathlib import Path

from ..status import (
    NOTEBOOK_UNREADABLE,
)
from .kernel import grade_notebook
from .render import exit_code, to_csv, to_json, to_table
from .results import DEFAULT_TIMEOUT, UsageError

# -- the command ------------------------------------------------------------------------------


def expand(paths: list[str]) -> list[tuple[Path, str]]:
    """Files as given, folders as their *.ipynb; raises UsageError on a missing path."""
    found = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            inside = sorted(path.glob("*.ipynb"))
            if not inside:
                raise UsageError(f"{p}: a folder with no notebooks in it")
            found += [(q, str(q)) for q in inside]
        elif path.exists():
            found.append((path, p))
        else:
            raise UsageError(f"{p}: no such file")
    return found


def main(paths: list[str], *, fmt: str = "table", timeout: float = DEFAULT_TIMEOUT) -> int:
    try:
        todo = expand(paths)
    except UsageError as exc:
        print(f"grade: {exc}", file=sys.stderr)
        return 2
    if timeout <= 0:
        print("grade: --timeout must be positive", file=sys.stderr)
        return 2
    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as exc:
        print(f"grade: {exc.name} is missing; install the command line's extra with "
              "`pip install 'contrastive-drills[cli]'` (or `make setup`)", file=sys.stderr)
        return 2
    from ..checks import REGISTRY

    results = []
    for path, shown in todo:
        if sys.stderr.isatty():
            print(f"grading {shown} ...", file=sys.stderr, flush=True)
        results.append(grade_notebook(path, timeout, REGISTRY, display_name=shown))
    if fmt == "json":
        sys.stdout.write(to_json(results, timeout) + "\n")
    elif fmt == "csv":
        sys.stdout.write(to_csv(results))
    else:
        sys.stdout.write(to_table(results))
    for r in results:
        if r.status == NOTEBOOK_UNREADABLE:
            print(f"grade: {r.notebook}: {r.message}", file=sys.stderr)
    return exit_code(results)
