"""Every drill from the learner's side (learners as data in tests/learners/): a learner's own
correct code, written differently from the solution, passes every check; pasted into the stub,
it runs the whole notebook without an error (the demos assert their claims, so the learner's
code clears them too) and every grader cell shows all checks passing. (Timings: `make bench`.)"""

import re

import pytest

import grader
from tests.learners import all_learners
from tests.nbtools import SOLUTIONS, exec_sources, run_stub_with

LEARNERS = all_learners()


def _graded(learner):
    return getattr(learner, "GRADED", None) or [
        n for n in learner.LEARNER if n in grader.REGISTRY.in_drill(learner.SOLUTION)]


@pytest.mark.parametrize("learner, name", [(m, n) for m in LEARNERS for n in _graded(m)],
                         ids=lambda v: getattr(v, "SOLUTION", v))
def test_a_differently_written_correct_answer_passes_every_check(learner, name):
    namespace = exec_sources(learner.LEARNER.values())
    report = grader.check(name, namespace[name], drill=learner.SOLUTION)
    assert report.passed, str(report)


@pytest.mark.parametrize("learner", LEARNERS, ids=lambda m: m.SOLUTION)
def test_a_learners_correct_code_runs_the_whole_notebook(learner, tmp_path):
    text = run_stub_with(SOLUTIONS / f"{learner.SOLUTION}.ipynb", learner.LEARNER,
                         learner.DEFINES, tmp_path)  # raises if any cell (a demo assert) failed
    assert re.search(learner.DEMO_SAYS, text), text[-2000:]


def test_every_drill_has_a_learner():
    drills = {p.stem for p in SOLUTIONS.glob("*.ipynb")}
    assert drills <= {m.SOLUTION for m in LEARNERS}
