"""Every reference implementation passes every check; every botched one fails, diagnosed."""

import pytest

import grader
from tests.botches import all_botches
from tests.nbtools import load_graded, solution_paths

REFERENCES = {}
for _path in solution_paths():
    _ns = load_graded(_path)
    for _name in grader.REGISTRY:
        if _name in _ns:
            REFERENCES[_name] = _ns[_name]


def test_every_graded_name_has_a_reference_in_a_solution():
    missing = sorted(set(grader.REGISTRY) - set(REFERENCES))
    assert not missing, f"graded names no solution notebook defines: {missing}"


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_passes_every_check(name):
    report = grader.check(name, REFERENCES[name])
    assert report.passed, str(report)


@pytest.mark.parametrize("name", sorted(grader.REGISTRY))
def test_each_graded_name_has_a_catalogue_of_at_least_five_botches(name):
    assert sum(b.graded_name == name for b in all_botches()) >= 5


@pytest.mark.parametrize("botch", all_botches(), ids=lambda b: f"{b.graded_name}-{b.name}")
def test_botch_fails_and_is_named(botch):
    report = grader.check(botch.graded_name, botch.obj)
    assert not report.passed, f"{botch.name} passed every check"
    # The headline, the likeliest mistake the learner reads first, must be this botch.
    assert botch.expect.lower() in report.diagnosis.lower(), (
        f"{botch.name}: the headline does not name it ({botch.expect!r}); got:\n{report}"
    )
    # One mistake, one diagnosis: every other red row follows from it, none blames another.
    assert len(report.mistakes) == 1, (
        f"{botch.name}: one mistake, but the report names {len(report.mistakes)}: "
        f"{report.mistakes}\n{report}"
    )
    assert botch.expect.lower() in report.mistakes[0].lower()
