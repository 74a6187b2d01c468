"""Helpers for tests that read or run notebooks."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"


def solution_paths() -> list[Path]:
    return sorted(SOLUTIONS.glob("*.ipynb"))


def read(path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def graded_cells(nb) -> list[int]:
    """Indices of the cells tagged `graded`: the ones that define the graded names."""
    return [i for i, c in enumerate(nb.cells) if "graded" in c.metadata.get("tags", [])]


def load_graded(path) -> dict:
    """Run only the `graded` cells of a notebook in a fresh namespace and return it.

    This is how tests get the reference implementations: straight from the solution notebook,
    the single source of truth, without running its demos.
    """
    nb = read(path)
    namespace: dict = {"__name__": f"solution_{Path(path).stem}"}
    for i in graded_cells(nb):
        exec(compile(nb.cells[i].source, f"{Path(path).name}[cell {i}]", "exec"), namespace)
    return namespace


def execute(nb, cwd, timeout=300) -> nbformat.NotebookNode:
    """Execute a copy of nb in a fresh kernel, keeping going past errors; return the copy."""
    nb = copy.deepcopy(nb)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    return nb


def output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def errors(nb) -> list[str]:
    return [
        f"cell {i}: {o.ename}: {ANSI.sub('', o.evalue)}"
        for i, c in enumerate(nb.cells) if c.cell_type == "code"
        for o in c.get("outputs", []) if o.output_type == "error"
    ]


def grader_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and "grader.check(" in c.source]


# -- a learner's own code, written differently from the solution ---------------------------------


def exec_sources(sources) -> dict:
    """Run each source string into one namespace, as a learner's cells would."""
    namespace: dict = {}
    for source in sources:
        exec(compile(source, "learner", "exec"), namespace)
    return namespace


def run_stub_with(solution_path, learner: dict, defines: dict, cwd) -> str:
    """Paste learner[name] into the stub cell that defines `name` (found by its defines[name]
    text), run the stub, check it raised nothing and every grader cell passed; return all the
    text the notebook printed."""
    from grader.stubs import make_stub

    stub = make_stub(read(solution_path))
    cells = graded_cells(stub)
    assert len(cells) == len(learner)
    for i in cells:
        (name,) = [n for n, d in defines.items() if d in stub.cells[i].source]
        stub.cells[i].source = learner[name].strip()
    done = execute(stub, cwd=cwd)
    assert errors(done) == []
    for i in grader_cells(done):
        assert re.search(r"all \d+ checks pass", output_text(done.cells[i]))
    text = "\n".join(output_text(c) for c in done.cells if c.cell_type == "code")
    assert "Implement `" not in text
    return text
