"""Rendering results: the table, CSV, JSON and the exit code."""

from __future__ import annotations

import csv
import io
import json

from ..status import (
    NOT_GRADED,
    NOTEBOOK_UNREADABLE,
)
from .results import Graded, NotebookResult

# -- reporting --------------------------------------------------------------------------------


def exit_code(results: list[NotebookResult]) -> int:
    if any(r.status == NOTEBOOK_UNREADABLE for r in results):
        return 2
    return 0 if all(r.passed for r in results) else 1


def to_json(results: list[NotebookResult], timeout: float) -> str:
    from .. import __version__

    doc = {
        "grader_version": __version__,
        "timeout": timeout,
        "exit_code": exit_code(results),
        "passed": all(r.passed for r in results),
        "notebooks": [r.to_dict() for r in results],
    }
    return json.dumps(doc, indent=1)


CSV_COLUMNS = ["notebook", "graded_name", "status", "checks_passed", "checks_total",
               "first_failing_check", "diagnosis", "notebook_status", "notebook_message"]


def to_csv(results: list[NotebookResult]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        rows = r.graded or [Graded("", r.status if r.status == NOTEBOOK_UNREADABLE else NOT_GRADED,
                                   diagnosis=r.message)]
        for g in rows:
            writer.writerow([r.notebook, g.graded_name, g.status, g.checks_passed,
                             g.checks_total, g.first_failing_check, g.diagnosis, r.status,
                             r.message])
    return buf.getvalue()


def to_table(results: list[NotebookResult]) -> str:
    rows = [("notebook", "graded name", "checks", "first failing check's diagnosis")]
    for r in results:
        if not r.graded:
            rows.append((r.notebook, "-", "-", r.message))
            continue
        for g in r.graded:
            diagnosis = g.diagnosis if not g.passed else "-"
            if g.passed and not r.passed:
                diagnosis = f"- (but the notebook {r.status})"
            rows.append((r.notebook, g.graded_name, f"{g.checks_passed}/{g.checks_total}",
                         diagnosis))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]),
                                row[2].rjust(widths[2]), row[3]]).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(row[3]))
    notes = [f"  {r.notebook}: {r.status}: {r.message}" for r in results
             if r.message and any(g.status != NOT_GRADED for g in r.graded)]
    if notes:
        lines += ["", "notes:", *notes]
    n_pass = sum(r.passed for r in results)
    lines += ["", f"{n_pass} of {len(results)} notebook(s) pass every check."]
    return "\n".join(lines) + "\n"


