"""The stored known answers are what the solution notebooks compute today."""

import json
import math

import pytest

from tests.known_answers import DATA, build

BUILT = build()


def _close(a, b):
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_close, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


@pytest.mark.parametrize("stem", sorted(BUILT))
def test_stored_known_answers_match_the_solution(stem):
    stored = json.loads((DATA / f"{stem}.json").read_text())
    assert _close(BUILT[stem], stored), (
        f"grader/data/{stem}.json is stale: run `python -m tests.known_answers`"
    )
