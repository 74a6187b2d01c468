"""Batch grading (`python -m grader grade`): each notebook, then its checks, run in a fresh kernel.

Each notebook is read once and executed as an in-memory copy in its own fresh kernel (nbclient),
in a scratch folder, so the file given is never written to and nothing lands beside it (the
drill clock is switched off in that kernel). Cells keep running after an error, so a notebook
that breaks halfway is graded on what it defined; the whole run has a time limit, after which
the kernel is interrupted. Then one more cell, run in the same kernel, grades the notebook's
graded names and prints the reports as one marked JSON line, which is read back here.

Which names a notebook is graded on: the ones its own cells pass to `grader.check` or
`grader.ready`, plus every graded name of its drill (from `grader.clock.start("NN_name")` or a file
named `NN_name*.ipynb`). A name it never defines is "missing", which fails. A notebook that
names no drill at all is graded on every registered name it defines.
"""

from .choose import expected_names
from .command import expand, main
from .inside import GRADING_CELL, grade_namespace
from .kernel import grade_notebook, read_notebook
from .render import exit_code, to_csv, to_json, to_table
from .results import DEFAULT_TIMEOUT, MARK, Graded, NotebookResult, UsageError

__all__ = ["DEFAULT_TIMEOUT", "GRADING_CELL", "MARK", "Graded", "NotebookResult", "UsageError",
           "exit_code", "expand", "expected_names", "grade_namespace", "grade_notebook", "main",
           "read_notebook", "to_csv", "to_json", "to_table"]
