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
import grader.checks
import grader.sandbox
from grader.checks import REGISTRY, Checklist
from grader.report import SKIP, TODO
from grader.sandbox import wall_backstop
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


def changes_threads(z1, z2, temperature=0.5):
    torch.set_num_threads(3)
    return REFERENCE(z1, z2, temperature)


def _state():
    return (torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_rng_state(),
            np.random.get_state()[1].copy(), random.getstate(), torch.get_num_threads())


def _same_state(a, b):
    return (a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
            and np.array_equal(a[3], b[3]) and a[4] == b[4] and a[5] == b[5])


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
    "changes torch's thread count": (changes_threads, "changes settings outside itself"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_code_becomes_a_failed_check_and_state_is_restored(name):
    fn, words = HOSTILE[name]
    before = _state()
    report = grader.check("nt_xent_loss", fn)
    assert not report.passed
    assert words in report.diagnosis, str(report)
    assert _same_state(before, _state())


def test_code_that_never_returns_is_stopped_at_the_cpu_limit_and_the_rest_skipped():
    start = time.perf_counter()
    report = grader.check("nt_xent_loss", never_returns)
    elapsed = time.perf_counter() - start
    assert not report.passed
    first = report.results[0]
    assert first.timed_out and "of CPU time" in first.message and "was stopped" in first.message
    assert "never returns" in report.diagnosis
    assert all(r.status == SKIP for r in report.results[1:])
    limit = grader.checks.DEFAULT_TIMEOUT
    assert elapsed < wall_backstop(limit) + 5, f"the grader took {elapsed:.1f} s to give up"


def test_code_that_blocks_is_stopped_by_the_wall_clock_backstop_and_told_it_waits():
    start = time.perf_counter()
    report = grader.check("nt_xent_loss", sleeps_forever)
    elapsed = time.perf_counter() - start
    first = report.results[0]
    assert not report.passed and first.timed_out
    assert "wall-clock limit" in first.message and "waiting" in first.message, first.message
    assert "still inside one long call" in first.message
    assert "ignored every request" not in first.message
    assert "waits for something" in report.diagnosis
    assert all(r.status == SKIP for r in report.results[1:])
    assert elapsed < wall_backstop(grader.checks.DEFAULT_TIMEOUT) + 5


def _one_check(cpu_seconds):
    """A checklist of one check with a short limit that calls the learner's function once."""
    cl = Checklist("slowpoke", drill="test")
    cl.add("calls it", diagnosis="-", hint="-", timeout=cpu_seconds)(lambda f: f())
    return cl


def test_slow_but_finite_code_is_told_it_was_slow_not_that_it_loops():
    with REGISTRY.registered(_one_check(0.2)):  # a 3.2 s wall-clock backstop
        report = grader.check("slowpoke", lambda: time.sleep(1.5))
        assert report.passed, str(report)  # 1.5 s of sleep is under the wall-clock backstop
        report = grader.check("slowpoke", lambda: [time.sleep(1.5) for _ in range(3)])
    message = report.results[0].message
    assert not report.passed and "wall-clock limit" in message and "waiting" in message
    # The sleep returned within the grace period and the code stopped: not "still running".
    assert "still" not in message and "ignored" not in message, message
    assert "never returns" not in report.diagnosis


def test_cpu_time_not_wall_time_is_what_the_limit_counts():
    # 0.6 s of sleeping under a 0.3 s CPU limit passes: waiting is not computing.
    with REGISTRY.registered(_one_check(0.3)):
        assert grader.check("slowpoke", lambda: time.sleep(0.6)).passed
    # 1 s of computing under the same limit does not.
    def spin():
        end = time.thread_time() + 1.0
        while time.thread_time() < end:
            pass
    with REGISTRY.registered(_one_check(0.3)):
        report = grader.check("slowpoke", spin)
    assert not report.passed and "CPU time" in report.results[0].message


def test_checks_run_on_one_torch_thread_and_the_count_is_restored():
    seen = []
    cl = Checklist("threads", drill="test")
    cl.add("looks", diagnosis="-", hint="-")(lambda f: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with REGISTRY.registered(cl):
            assert grader.check("threads", lambda: None).passed
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_graders_own_comparison_error_is_not_blamed_on_the_learner():
    # update_center in float32 on float64 inputs: the check's comparison with a float64
    # expectation raises inside torch, called by the grader, not by the learner.
    def float32_center(center, teacher_out, momentum=0.9):
        mean = torch.cat(list(teacher_out)).mean(0)
        return (momentum * center + (1 - momentum) * mean).float()

    report = grader.check("update_center", float32_center)
    assert not report.passed
    rows = [r for r in report.results if not r.passed]
    assert rows
    for r in rows:
        assert "your code raised" not in r.message, r.message
        assert "crashed" not in r.diagnosis, r.diagnosis
    assert any("dtype" in r.diagnosis for r in rows), [r.diagnosis for r in rows]


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
    assert box["r"].results[0].timed_out


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


def _probe_list(name, drill, verdict):
    cl = Checklist(name, drill=drill)
    cl.add(f"{drill} says {verdict}", diagnosis="-", hint="-")(
        lambda f: None if verdict == "pass" else (_ for _ in ()).throw(
            grader.sandbox.Fail("no", diagnosis=f"wrong for {drill}")))
    return cl


def test_a_name_graded_in_two_drills_is_checked_against_the_drill_asked_for():
    with REGISTRY.registered(_probe_list("twin", "90_first", "pass")), \
            REGISTRY.registered(_probe_list("twin", "91_second", "fail")):
        assert grader.check("twin", lambda: None, drill="90_first").passed
        second = grader.check("twin", lambda: None, drill="91_second")
        assert not second.passed and "wrong for 91_second" in second.diagnosis
        # No drill and no clock: which list applies is ambiguous, and the report says how to
        # choose instead of guessing.
        ambiguous = grader.check("twin", lambda: None)
        assert not ambiguous.passed and 'drill="90_first"' in ambiguous.problem
        # The clock of the notebook's drill decides.
        import grader.clock as clock
        saved = clock._current
        try:
            clock._current = clock.Clock("91_second", persist=False)
            assert not grader.check("twin", lambda: None).passed
            clock._current = clock.Clock("90_first", persist=False)
            assert grader.check("twin", lambda: None).passed
        finally:
            clock._current = saved
    assert "twin" not in REGISTRY


def test_registering_a_name_twice_in_one_drill_is_an_error():
    with REGISTRY.registered(_probe_list("once", "90_first", "pass")):
        with pytest.raises(ValueError, match="already graded in drill 90_first"):
            grader.checks.checklist("once", "90_first")
    with pytest.raises(ValueError, match="already graded in drill 01_nt_xent"):
        grader.checks.checklist("nt_xent_loss", "01_nt_xent")


@pytest.mark.parametrize("fn", [REFERENCE, stub, raises], ids=["passes", "stub", "raises"])
def test_a_report_round_trips_through_its_dict(fn):
    report = grader.check("nt_xent_loss", fn)
    again = grader.Report.from_dict(report.to_dict())
    assert again.to_dict() == report.to_dict()
    assert (again.status, again.diagnosis, again.score()) == (
        report.status, report.diagnosis, report.score())


def test_call_finds_in_place_changes_inside_list_arguments():
    from grader.sandbox import Fail, call

    views = [torch.ones(2, 3), torch.ones(2, 3)]

    def centres_in_place(outputs):
        outputs[1].sub_(1.0)
        return outputs

    with pytest.raises(Fail, match="item 1 of argument 1 was changed in place"):
        call(centres_in_place, [v.clone() for v in views])
    with pytest.raises(Fail, match="argument 1 \\(a list\\) was changed"):
        call(lambda outputs: outputs.append(torch.zeros(1)), list(views))
    assert call(lambda outputs: sum(o.sum() for o in outputs), views).item() == 12.0


def test_one_mistake_many_red_rows_one_diagnosis_and_the_rest_follow_from_it():
    botch = next(b for b in NT_XENT_BOTCHES if b.name == "no diagonal mask")
    report = grader.check("nt_xent_loss", botch.obj)
    red = [r for r in report.results if not r.passed]
    assert len(red) >= 4 and len(report.mistakes) == 1
    assert "diagonal is not masked" in report.mistakes[0]
    text = str(report)
    assert "follows from: the diagonal is not masked" in text
    assert "follows from: the diagonal is not masked" in report._repr_html_()
    assert "drops to float32" not in text and ".squeeze()" not in text
    assert report.to_dict()["mistakes"] == report.mistakes
