"""What grading a notebook produces: a row per graded name, a result per notebook."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..status import (
    NOTEBOOK_GRADABLE,
    NOTEBOOK_OK,
    PASS,
)

MARK = "@@contrastive-drills-grade@@"
DEFAULT_TIMEOUT = 300  # seconds for running one notebook's cells; grading has its own budget
GRADING_MARGIN = 60  # seconds on top of the checks' own time limits (imports, a slow start)


class UsageError(Exception):
    """Bad command-line input that is not about one notebook (exit code 2)."""


@dataclass
class Graded:
    """One graded name in one notebook: a row of the table."""

    graded_name: str
    status: str
    checks_passed: int = 0
    checks_total: int = 0
    first_failing_check: str = ""
    diagnosis: str = ""
    report: dict | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASS


@dataclass
class NotebookResult:
    notebook: str
    status: str = NOTEBOOK_OK  # one of grader.status.NOTEBOOK_*
    message: str = ""
    seconds: float = 0.0
    cell_errors: list[dict] = field(default_factory=list)
    graded: list[Graded] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (self.status in NOTEBOOK_GRADABLE and bool(self.graded)
                and all(g.passed for g in self.graded))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        for g, row in zip(self.graded, d["graded"], strict=True):
            row["passed"] = g.passed
        return d


