"""The stubs state the contract and keep the pitfalls folded (tests/giveaway.py has the rule)."""

from __future__ import annotations

import inspect
import textwrap

import pytest

import grader
from tests import catalogue_run
from tests.botches import all_botches
from tests.giveaway import giveaways, telling_names
from tests.nbtools import NOTEBOOKS, SOLUTIONS, graded_cells, read


def _mistakes(drill: str) -> dict[str, str]:
    """botch -> the words the grader answers it with: the headline diagnosis and its hint."""
    out = {}
    for who, _d, _name, report in catalogue_run.graded_in(drill):
        if not who.startswith("botch"):
            continue
        head = next((r for r in report.results if not r.passed and r.conclusive),
                    report.first_failure)
        out[who] = f"{report.diagnosis} {head.hint if head else ''}"
    return out


def _telling_names(drill: str) -> dict[str, set[str]]:
    """botch -> the names its code uses that the solution's graded cells do not."""
    solution = read(SOLUTIONS / f"{drill}.ipynb")
    reference = "\n".join(solution.cells[i].source for i in graded_cells(solution))
    out = {}
    for b in all_botches():
        if grader.REGISTRY.drills_of(b.graded_name)[0] != drill:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(b.obj))
        except (OSError, TypeError):
            continue
        out[f"botch {b.name!r}"] = telling_names(source, reference)
    return out


@pytest.mark.parametrize("stub", sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
def test_the_stub_does_not_give_a_botch_away(stub):
    mistakes = _mistakes(stub)
    assert mistakes, f"no botches found for {stub}: is the catalogue run?"
    found = giveaways(read(NOTEBOOKS / f"{stub}.ipynb"), mistakes, _telling_names(stub))
    shown = "\n".join(f"- {b}: shares {shared}\n    {s[:200]}" for s, b, shared in found)
    assert not found, f"{stub}: visible sentences that give a botch's fix away:\n{shown}"
