"""Check results and the report a learner reads: a table in a terminal, coloured rows in Jupyter."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field, fields

from .status import FAIL, PASS, SKIP, TODO, VOID

__all__ = ["CheckResult", "Report", "PASS", "FAIL", "TODO", "SKIP"]

NOT_IMPLEMENTED = "not implemented yet (the stub still raises NotImplementedError)"


@dataclass
class CheckResult:
    """One check: what it tests, whether it passed, and if not, the learner's likely mistake."""

    name: str
    passed: bool
    message: str = ""
    diagnosis: str = ""
    hint: str = ""
    seconds: float = 0.0
    status: str = PASS
    measured: str = ""
    expected: str = ""
    conclusive: bool = True  # False: failed, but the diagnosis is only a guess
    timed_out: bool = False  # stopped at a time limit (the later checks are then not run)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CheckResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Report:
    """Every check run for one graded name. `passed` is True only when all of them passed."""

    graded_name: str
    results: list[CheckResult] = field(default_factory=list)
    problem: str = ""  # set when the object could not be checked at all (e.g. not callable)
    void: str = ""  # set when the code under test tampered with the grader: why (grader.guard)

    @property
    def passed(self) -> bool:
        return (bool(self.results) and not self.problem and not self.void
                and all(r.passed for r in self.results))

    @property
    def n_passed(self) -> int:
        """Checks passed; none count in a void report."""
        return 0 if self.void else sum(r.passed for r in self.results)

    @property
    def implemented(self) -> bool:
        return not any(r.status == TODO for r in self.results)

    @property
    def first_failure(self) -> CheckResult | None:
        return next((r for r in self.results if not r.passed), None)

    @property
    def status(self) -> str:
        """PASS, TODO (every check still meets an untouched stub), FAIL, or VOID."""
        if self.void:
            return VOID
        if self.passed:
            return PASS
        if self.results and not self.problem and all(r.status == TODO for r in self.results):
            return TODO
        return FAIL

    @property
    def diagnosis(self) -> str:
        """The headline, decided here only: the likeliest mistake, from the first conclusive
        failure (or the first failure, when none is conclusive)."""
        if self.void:
            return self.void
        if self.problem:
            return self.problem
        if self.status == TODO:
            return NOT_IMPLEMENTED
        failures = [r for r in self.results if not r.passed]
        if not failures:
            return ""
        first = next((r for r in failures if r.conclusive), failures[0])
        return first.diagnosis or first.message

    @property
    def mistakes(self) -> list[str]:
        """The distinct mistakes this report names, the headline first.

        A mistake is named by a failing row whose check could tell the cause (a conclusive
        failure). Rows that only saw that something is wrong are taken to follow from the
        headline mistake and add none of their own; so one classic mistake, whatever the number
        of red rows it causes, gives one entry.
        """
        if self.void or self.problem:
            return [self.void or self.problem]
        if self.status == TODO or self.passed:
            return []
        found = [self.diagnosis]
        for r in self.results:
            if (not r.passed and r.status == FAIL and r.conclusive and r.diagnosis
                    and r.diagnosis not in found):
                found.append(r.diagnosis)
        return found

    def follows_from_headline(self, result: CheckResult) -> bool:
        """True for a failing row that names no mistake of its own while the headline does."""
        return (not result.passed and result.status == FAIL and not result.conclusive
                and bool(self.mistakes) and result.diagnosis != self.diagnosis
                and any(r.conclusive for r in self.results if not r.passed))

    def _row_diagnosis(self, result: CheckResult) -> str:
        if self.follows_from_headline(result):
            return f"follows from: {self.diagnosis}"
        return result.diagnosis

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.results)

    def score(self) -> str:
        return f"{self.n_passed}/{len(self.results)}"

    def to_dict(self) -> dict:
        return {
            "graded_name": self.graded_name,
            "passed": self.passed,
            "status": self.status,
            "score": self.score(),
            "diagnosis": self.diagnosis,
            "mistakes": self.mistakes,
            "problem": self.problem,
            "void": self.void,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Report:
        """The inverse of to_dict (the derived fields are recomputed, not trusted)."""
        return cls(d["graded_name"], [CheckResult.from_dict(r) for r in d.get("results", [])],
                   d.get("problem", ""), d.get("void", ""))

    def headline(self) -> str:
        if self.void:
            return f"{self.graded_name}: VOID: {self.void}"
        if self.problem:
            return f"{self.graded_name}: cannot be checked: {self.problem}"
        if self.results and all(r.status == TODO for r in self.results):
            return f"{self.graded_name}: not implemented yet (0/{len(self.results)} checks)"
        if self.passed:
            return f"{self.graded_name}: all {len(self.results)} checks pass"
        return f"{self.graded_name}: {self.score()} checks pass. Most likely: {self.diagnosis}"

    def __str__(self) -> str:
        lines = [self.headline(), ""]
        for r in self.results:
            mark = {PASS: "PASS", FAIL: "FAIL", TODO: "TODO", SKIP: "SKIP"}[r.status]
            lines.append(f"  [{mark}] {r.name}")
            if r.status == TODO:
                continue
            if r.message:
                lines.append(f"         {r.message}")
            if not r.passed and r.status != SKIP:
                if r.measured or r.expected:
                    lines.append(f"         yours: {r.measured}   expected: {r.expected}")
                if r.diagnosis:
                    lines.append(f"         likely mistake: {self._row_diagnosis(r)}")
                if r.hint:
                    lines.append(f"         hint: {r.hint}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colours = {PASS: "#e6f4ea", FAIL: "#fce8e6", TODO: "#f1f3f4", SKIP: "#f1f3f4"}
        marks = {PASS: "&#10004;", FAIL: "&#10008;", TODO: "&#8230;", SKIP: "&ndash;"}
        esc = html.escape
        rows = []
        for r in self.results:
            detail = ""
            if r.status == TODO:
                detail = "not implemented yet"
            else:
                parts = []
                if r.message:
                    parts.append(esc(r.message))
                if not r.passed and r.status != SKIP:
                    if r.measured or r.expected:
                        parts.append(
                            f"yours: <code>{esc(r.measured)}</code> &nbsp; "
                            f"expected: <code>{esc(r.expected)}</code>"
                        )
                    if r.diagnosis:
                        parts.append(f"<b>likely mistake:</b> {esc(self._row_diagnosis(r))}")
                    if r.hint:
                        parts.append(f"<i>hint:</i> {esc(r.hint)}")
                detail = "<br>".join(parts)
            rows.append(
                f'<tr style="background:{colours[r.status]}">'
                f'<td style="text-align:center">{marks[r.status]}</td>'
                f'<td style="text-align:left">{esc(r.name)}</td>'
                f'<td style="text-align:left">{detail}</td></tr>'
            )
        return (
            f"<div><p><b>{esc(self.headline())}</b></p>"
            '<table style="border-collapse:collapse">'
            "<tr><th></th><th style='text-align:left'>check</th>"
            "<th style='text-align:left'>result</th></tr>"
            + "".join(rows)
            + "</table></div>"
        )
