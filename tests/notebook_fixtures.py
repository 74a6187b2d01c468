"""Small drill-01 notebooks for testing `python -m grader grade`, built with nbformat.

The complete one takes `nt_xent_loss` and the stretch `info_nce_loss` from the solution
notebook's `graded` cells (the single source of truth); the others are variations of it. To
look at them, or grade them by hand:

    .venv/bin/python -m tests.notebook_fixtures /tmp/fixtures
    .venv/bin/python -m grader grade /tmp/fixtures/*.ipynb --timeout 10
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.stubs import make_stub
from tests.nbtools import SOLUTIONS, graded_cells, read

SOLUTION = SOLUTIONS / "01_nt_xent.ipynb"

START = 'import grader\nimport grader.clock\n\nclock = grader.clock.start("01_nt_xent")'
CHECK = 'grader.check("nt_xent_loss", nt_xent_loss)'

# A classic mistake, written for these tests: the diagonal (each view with itself) is not masked.
BOTCHED = '''\
import torch
import torch.nn.functional as F


def nt_xent_loss(z1, z2, temperature=0.5):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, targets)'''


def reference_source() -> str:
    nb = read(SOLUTION)
    cells = graded_cells(nb)  # nt_xent_loss, then the stretch info_nce_loss
    assert cells, f"{SOLUTION.name}: no `graded` cell"
    return "\n\n\n".join(nb.cells[i].source for i in cells)


def _notebook(*cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_markdown_cell("# A learner's drill 01")] + list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    graded = [c for c in nb.cells if "def nt_xent_loss" in c.source]
    for c in graded:
        c.metadata["tags"] = ["graded"]
    return nb


def notebooks() -> dict[str, nbformat.NotebookNode]:
    """name -> notebook. "raises" raises in its third cell, "missing" never defines the graded
    name, "hangs" never finishes its fourth cell."""
    reference = reference_source()
    complete = _notebook(new_code_cell(START), new_code_cell(reference), new_code_cell(CHECK))
    return {
        "complete": complete,
        "botched": _notebook(new_code_cell(START), new_code_cell(BOTCHED), new_code_cell(CHECK)),
        "stub": make_stub(complete),
        "raises": _notebook(
            new_code_cell("import torch\nimport grader"),
            new_code_cell("z = torch.ones(4, 8)\nz @ z  # a learner's experiment gone wrong"),
            new_code_cell(reference),
            new_code_cell(CHECK),
        ),
        "missing": _notebook(new_code_cell(START), new_code_cell(CHECK)),
        "hangs": _notebook(
            new_code_cell(START),
            new_code_cell(reference),
            new_code_cell("import time\n\nwhile True:  # waiting for something that never comes\n"
                          "    time.sleep(0.1)"),
            new_code_cell(CHECK),
        ),
    }


def build(folder) -> dict[str, Path]:
    """Write every fixture notebook, plus a file that is not a notebook, into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, nb in notebooks().items():
        paths[name] = folder / f"01_nt_xent_{name}.ipynb"
        nbformat.write(nb, paths[name])
    paths["not_a_notebook"] = folder / "01_nt_xent_not_a_notebook.ipynb"
    paths["not_a_notebook"].write_text("these are my notes, not a notebook\n")
    return paths


if __name__ == "__main__":
    for name, path in build(sys.argv[1] if len(sys.argv) > 1 else "fixtures").items():
        print(f"{name:<16} {path}")
