"""One grading pass over the references and the botch catalogue, shared by the tests that read
what the grader says (its hints, its diagnoses): about a minute, paid once per test session."""

from __future__ import annotations

import functools

import grader
from tests.botches import all_botches
from tests.nbtools import load_graded, solution_paths


def graded() -> tuple[tuple[str, str, str, grader.Report], ...]:
    """(who, drill, graded name, report): "reference NAME" for each solution's graded names,
    then "botch NAME" for every botch of the catalogue, drill by drill."""
    return tuple(row for path in solution_paths() for row in graded_in(path.stem))


@functools.cache
def graded_in(drill: str) -> tuple[tuple[str, str, str, grader.Report], ...]:
    """graded(), for one drill."""
    out = []
    for path in solution_paths():
        if path.stem != drill:
            continue
        namespace = load_graded(path)
        for name in grader.REGISTRY.in_drill(path.stem):
            if name in namespace:
                out.append((f"reference {name}", path.stem, name,
                            grader.check(name, namespace[name], drill=path.stem)))
    for b in all_botches():
        if grader.REGISTRY.drills_of(b.graded_name)[0] != drill:
            continue
        out.append((f"botch {b.name!r}", drill, b.graded_name,
                    grader.check(b.graded_name, b.obj, drill=drill)))
    return tuple(out)
