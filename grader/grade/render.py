"""Rendering results: the table, CSV, JSON Lines and the exit code.

Each format is written a notebook at a time, as each is graded, so a batch that is stopped
midway keeps every row it finished: `header()` once, `rows(result)` per notebook, `footer()`
once at the end. The table can do this because its column widths are known before anything
is graded: from the notebooks' names and from the registry's graded names.
"""

from __future__ import annotations

import csv
import io
import json

from ..status import (
    NOT_GRADED,
    NOTEBOOK_CELL_ERRORS,
    NOTEBOOK_KERNEL_DIED,
    NOTEBOOK_OK,
    NOTEBOOK_TIMED_OUT,
    NOTEBOOK_UNREADABLE,
)
from .results import Graded, NotebookResult

# -- reporting --------------------------------------------------------------------------------


def exit_code(results: list[NotebookResult]) -> int:
    if any(r.status == NOTEBOOK_UNREADABLE for r in results):
        return 2
    return 0 if all(r.passed for r in results) else 1


class Json:
    """JSON Lines: one object per notebook (its result and the grader's version), then one
    `{"summary": ...}` line."""

    def __init__(self, timeout: float):
        from .. import __version__

        self.timeout, self.version = timeout, __version__

    def header(self) -> str:
        return ""

    def rows(self, r: NotebookResult) -> str:
        return json.dumps({"grader_version": self.version, **r.to_dict()}) + "\n"

    def footer(self, results: list[NotebookResult]) -> str:
        summary = {"grader_version": self.version, "timeout": self.timeout,
                   "exit_code": exit_code(results), "passed": all(r.passed for r in results),
                   "notebooks": len(results)}
        return json.dumps({"summary": summary}) + "\n"


CSV_COLUMNS = ["notebook", "graded_name", "status", "checks_passed", "checks_total",
               "first_failing_check", "diagnosis", "notebook_status", "notebook_message"]


class Csv:
    """One row per notebook and graded name, under one header."""

    def header(self) -> str:
        return self._line(CSV_COLUMNS)

    def rows(self, r: NotebookResult) -> str:
        rows = r.graded or [Graded("", r.status if r.status == NOTEBOOK_UNREADABLE else NOT_GRADED,
                                   diagnosis=r.message)]
        return "".join(self._line([r.notebook, g.graded_name, g.status, g.checks_passed,
                                   g.checks_total, g.first_failing_check, g.diagnosis, r.status,
                                   r.message]) for g in rows)

    def footer(self, results: list[NotebookResult]) -> str:
        return ""

    @staticmethod
    def _line(values) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        return buf.getvalue()


# What a passing row says when its notebook did not run cleanly; any other status is named as is.
_NOTEBOOK_WAS = {
    NOTEBOOK_CELL_ERRORS: "the notebook had cell errors",
    NOTEBOOK_TIMED_OUT: "the notebook timed out",
    NOTEBOOK_KERNEL_DIED: "the notebook's kernel died",
}


def passing_diagnosis(status: str) -> str:
    """The diagnosis column of a passing row: "-", or why the notebook around it is suspect.
    A notebook that fails only because another name fails is no news here: that row says so."""
    if status == NOTEBOOK_OK:
        return "-"
    return f"- ({_NOTEBOOK_WAS.get(status, f'the notebook: {status}')})"


class Table:
    """The human-readable table. `notebooks` are the names shown, `graded` the (graded name,
    number of checks) pairs any row may hold: together they fix the column widths."""

    HEAD = ("notebook", "graded name", "checks", "first failing check's diagnosis")

    def __init__(self, notebooks, graded):
        graded = list(graded)
        self.widths = [
            max([len(self.HEAD[0]), *map(len, notebooks)]),
            max([len(self.HEAD[1]), 1, *(len(name) for name, _ in graded)]),
            max([len(self.HEAD[2]), 1, *(len(f"{n}/{n}") for _, n in graded)]),
        ]

    @classmethod
    def for_registry(cls, notebooks, registry) -> Table:
        return cls(notebooks, [(name, len(cl.checks)) for name, cl in registry.items()])

    def _line(self, row) -> str:
        w = self.widths
        return "  ".join([row[0].ljust(w[0]), row[1].ljust(w[1]), row[2].rjust(w[2]),
                          row[3]]).rstrip() + "\n"

    def header(self) -> str:
        rule = "  ".join("-" * w for w in self.widths) + "  " + "-" * len(self.HEAD[3])
        return self._line(self.HEAD) + rule + "\n"

    def rows(self, r: NotebookResult) -> str:
        if not r.graded:
            return self._line((r.notebook, "-", "-", r.message))
        return "".join(self._line((r.notebook, g.graded_name, f"{g.checks_passed}/{g.checks_total}",
                                   passing_diagnosis(r.status) if g.passed else g.diagnosis))
                       for g in r.graded)

    def footer(self, results: list[NotebookResult]) -> str:
        lines = []
        notes = [f"  {r.notebook}: {r.status}: {r.message}" for r in results
                 if r.message and any(g.status != NOT_GRADED for g in r.graded)]
        if notes:
            lines += ["", "notes:", *notes]
        n_pass = sum(r.passed for r in results)
        lines += ["", f"{n_pass} of {len(results)} notebook(s) pass every check."]
        return "\n".join(lines) + "\n"


def _whole(writer, results) -> str:
    return writer.header() + "".join(writer.rows(r) for r in results) + writer.footer(results)


def to_json(results: list[NotebookResult], timeout: float) -> str:
    return _whole(Json(timeout), results)


def to_csv(results: list[NotebookResult]) -> str:
    return _whole(Csv(), results)


def to_table(results: list[NotebookResult]) -> str:
    graded = [(g.graded_name, g.checks_total) for r in results for g in r.graded]
    return _whole(Table([r.notebook for r in results], graded), results)
