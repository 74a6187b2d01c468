"""The grader itself: hostile learner code, state restored, reports rendered, never a crash."""

import random
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import grader
from grader.report import SKIP, TODO
from tests.botches.nt_xent import CATALOGUE as NT_XENT_BOTCHES
from tests.nbtools import ROOT, SOLUTIONS, load_graded

REFERENCE = load_graded(SOLUTIONS / "01_nt_xent.ipynb")["nt_xent_loss"]


def raises(z1, z2, temperature=0.5):
    raise ValueError("shapes do not match")


def returns_none(z1, z2, temperature=0.5):
    pass


def returns_nan(z1, z2, temperature=0.5):
    return torch.tensor(float("nan"))


def wrong_shape(z1, z2, temperature=0.5):
    return torch.zeros(2 * len(z1))


def never_returns(z1, z2, temperature=0.5):
    while True:
        pass


def sleeps_forever(z1, z2, temperature=0.5):
    time.sleep(10_000)


def swallows_timeouts(z1, z2, temperature=0.5):
    while True:
        try:
            while True:
                pass
        except BaseException:
            continue


def changes_default_dtype(z1, z2, temperature=0.5):
    torch.set_default_dtype(torch.float64)
    return REFERENCE(z1, z2, temperature)


def disables_grad(z1, z2, temperature=0.5):
    torch.set_grad_enabled(False)
    return REFERENCE(z1, z2, temperature)


def reseeds(z1, z2, temperature=0.5):
    torch.manual_seed(0)
    return REFERENCE(z1, z2, temperature)


def mutates_inputs(z1, z2, temperature=0.5):
    z1.mul_(2.0)
    return REFERENCE(z1, z2, temperature)


def exits(z1, z2, temperature=0.5):
    raise SystemExit(1)


def stub(z1, z2, temperature=0.5):
    raise NotImplementedError("implement `nt_xent_loss`")


def wrong_signature(z1, z2, tau=0.5):
    return REFERENCE(z1, z2, tau)


def _state():
    return (torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_rng_state(),
            np.random.get_state()[1].copy(), random.getstate())


def _same_state(a, b):
    return (a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
            and np.array_equal(a[3], b[3]) and a[4] == b[4])


HOSTILE = {
    "raises": (raises, "crashed"),
    "returns None": (returns_none, "does not return anything"),
    "returns NaN": (returns_nan, "overflowed or divided by zero"),
    "wrong shape": (wrong_shape, "not reduced to one number"),
    "changes the default dtype": (changes_default_dtype, "changes settings outside itself"),
    "switches gradients off": (disables_grad, "changes settings outside itself"),
    "reseeds the global RNG": (reseeds, "changes settings outside itself"),
    "mutates its inputs": (mutates_inputs, "in-place"),
    "calls sys.exit": (exits, "crashed"),
    "wrong signature": (wrong_signature, "signature"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_code_becomes_a_failed_check_and_state_is_restored(name):
    fn, words = HOSTILE[name]
    before = _state()
    report = grader.check("nt_xent_loss", fn)
    assert not report.passed
    assert words in report.diagnosis, str(report)
    assert _same_state(before, _state())


@pytest.mark.parametrize("fn", [never_returns, sleeps_forever], ids=lambda f: f.__name__)
def test_code_that_never_returns_is_stopped_and_the_rest_skipped(fn):
    start = time.perf_counter()
    report = grader.check("nt_xent_loss", fn)
    elapsed = time.perf_counter() - start
    assert not report.passed
    assert "did not finish" in report.results[0].message
    assert "never returns" in report.diagnosis
    assert all(r.status == SKIP for r in report.results[1:])
    assert elapsed < 10, f"the grader took {elapsed:.1f} s to give up"


def test_code_that_swallows_every_stop_request_is_abandoned_and_the_learner_told():
    # In a separate process: the abandoned thread spins for as long as its process lives, and
    # would slow every later test here.
    script = (
        "import grader, tests.test_grader as t\n"
        "r = grader.check('nt_xent_loss', t.swallows_timeouts)\n"
        "print(r.results[0].message); print(r.diagnosis)\n"
        "import os; os._exit(0)\n"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "still running in the background, so restart the kernel" in done.stdout
    assert "never returns" in done.stdout
    assert time.perf_counter() - start < 60


def test_time_limit_also_works_outside_the_main_thread():
    box = {}
    worker = threading.Thread(target=lambda: box.update(r=grader.check("nt_xent_loss",
                                                                       never_returns)))
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    assert "did not finish" in box["r"].results[0].message


def test_an_untouched_stub_shows_every_check_as_not_implemented():
    report = grader.check("nt_xent_loss", stub)
    assert not report.passed
    assert all(r.status == TODO for r in report.results)
    assert "not implemented yet" in report.headline()
    assert "not implemented yet" in report._repr_html_()


@pytest.mark.parametrize("obj", [None, 3, "nt_xent_loss", torch.nn.Linear])
def test_something_that_is_not_a_function_is_reported_not_raised(obj):
    report = grader.check("nt_xent_loss", obj)
    assert not report.passed
    assert "should be a function" in report.problem


def test_an_unknown_graded_name_is_reported():
    report = grader.check("no_such_function", REFERENCE)
    assert not report.passed and "no checks for" in report.problem


def test_ready_is_false_for_a_stub_and_says_what_to_write(capsys):
    assert grader.ready("nt_xent_loss", stub) is False
    assert "Implement `nt_xent_loss` first" in capsys.readouterr().out
    assert grader.ready("nt_xent_loss", REFERENCE) is True


def test_report_renders_as_text_and_html_with_measured_and_expected_values():
    botch = next(b for b in NT_XENT_BOTCHES if b.name == "no diagonal mask")
    report = grader.check("nt_xent_loss", botch.obj)
    text, page = str(report), report._repr_html_()
    assert "[FAIL] collapsed embeddings give exactly log(2N-1)" in text
    assert "yours: 2.07944" in text and "expected: log(7) = 1.94591" in text
    assert "likely mistake: the diagonal is not masked" in text
    assert "<table" in page and "#fce8e6" in page and "#e6f4ea" in page
    assert "the diagonal is not masked" in page


def test_report_results_carry_every_documented_field():
    report = grader.check("nt_xent_loss", REFERENCE)
    assert report.passed and len(report.results) >= 12
    for r in report.results:
        assert r.passed is True and r.name and r.seconds >= 0
        assert {"name", "passed", "message", "diagnosis", "hint", "seconds"} <= r.to_dict().keys()
