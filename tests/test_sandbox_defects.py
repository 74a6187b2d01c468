"""The grader's smaller defects (issue 11): checks from two threads at once, a KeyboardInterrupt
raised by learner code or pressed by the user, global settings beyond torch's numbers, and the
GIL a stuck loop left behind holds while later checks run."""

import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import pytest
import torch

import grader
import grader.sandbox as sandbox
from grader.checks import REGISTRY, Checklist
from tests.alternatives import nt_xent_by_hand, nt_xent_two_halves
from tests.nbtools import ROOT, SOLUTIONS, load_graded

REFERENCE = load_graded(SOLUTIONS / "01_nt_xent.ipynb")["nt_xent_loss"]


def _one_check(name, cpu_seconds=5.0):
    """A checklist of one check that calls the learner's function once."""
    cl = Checklist(name, drill="test")
    cl.add("calls it", diagnosis="-", hint="-", timeout=cpu_seconds)(lambda f: f())
    return cl


def _best_time(fn, runs=3) -> float:
    """The fastest of a few wall-clock times of grading `fn`, each of which must pass."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        report = grader.check("nt_xent_loss", fn)
        best = min(best, time.perf_counter() - start)
        assert report.passed, str(report)
    return best


# -- 1. two threads at once ----------------------------------------------------------------------


def test_correct_code_graded_from_two_threads_at_once_passes_every_time():
    for _ in range(4):
        reports = []
        threads = [threading.Thread(target=lambda f=f, out=reports: out.append(
            grader.check("nt_xent_loss", f))) for f in (nt_xent_by_hand, nt_xent_two_halves,
                                                       REFERENCE)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(reports) == 3
        failed = [str(r) for r in reports if not r.passed]
        assert not failed, "\n\n".join(failed)


def test_a_check_inside_a_check_does_not_wait_for_itself():
    box = {}
    with REGISTRY.registered(_one_check("nested")):
        outer = threading.Thread(target=lambda: box.update(r=grader.check(
            "nested", lambda: box.update(inner=grader.check("nt_xent_loss", REFERENCE)))))
        outer.start()
        outer.join(60)
    assert not outer.is_alive(), "the check inside a check waits for the lock its caller holds"
    assert isinstance(box["r"], grader.Report) and isinstance(box["inner"], grader.Report)


# -- 2. KeyboardInterrupt ------------------------------------------------------------------------


def interrupts(z1, z2, temperature=0.5):
    raise KeyboardInterrupt


def test_code_that_raises_keyboard_interrupt_fails_a_check_and_grading_goes_on():
    try:
        report = grader.check("nt_xent_loss", interrupts)
        ready = grader.ready("nt_xent_loss", interrupts)
    except KeyboardInterrupt:
        pytest.fail("grader raised the learner's KeyboardInterrupt")
    assert not report.passed
    assert "your code raised KeyboardInterrupt" in report.first_failure.message, str(report)
    assert ready is True  # not a stub: the demo cell runs, and shows the error itself
    assert grader.check("nt_xent_loss", REFERENCE).passed


CTRL_C = """
import _thread, threading, time, torch, grader
from tests.test_sandbox_defects import REFERENCE
ticks = []
def waits(z1, z2, temperature=0.5):
    torch.set_default_dtype(torch.float64)
    while True:
        ticks.append(1)
        time.sleep(0.01)
threading.Timer(1.0, _thread.interrupt_main).start()
start = time.perf_counter()
try:
    grader.check("nt_xent_loss", waits)
    print("not interrupted")
except KeyboardInterrupt:
    print(f"interrupted in {time.perf_counter() - start:.1f} s")
n = len(ticks)
time.sleep(0.3)
print("worker stopped:", len(ticks) == n)
print("dtype restored:", torch.get_default_dtype() == torch.float32)
print("grading again passes:", grader.check("nt_xent_loss", REFERENCE).passed)
"""


def test_a_ctrl_c_while_a_check_runs_stops_the_learners_code_and_grading():
    # In a separate process: an interrupt that missed its moment would stop this test run.
    done = subprocess.run([sys.executable, "-c", CTRL_C], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "interrupted in" in out, out
    assert float(out.split("interrupted in ")[1].split(" s")[0]) < 5, out
    assert "worker stopped: True" in out, out
    assert "dtype restored: True" in out, out
    assert "grading again passes: True" in out, out


# -- 3. global settings --------------------------------------------------------------------------


def prints_with_two_digits(z1, z2, temperature=0.5):
    torch.set_printoptions(precision=2, linewidth=40)
    return REFERENCE(z1, z2, temperature)


def silences_warnings(z1, z2, temperature=0.5):
    warnings.simplefilter("ignore")
    return REFERENCE(z1, z2, temperature)


def replaces_the_warnings_filters(z1, z2, temperature=0.5):
    warnings.filters = []
    return REFERENCE(z1, z2, temperature)


def turns_determinism_on(z1, z2, temperature=0.5):
    torch.use_deterministic_algorithms(True)
    return REFERENCE(z1, z2, temperature)


def sets_a_variable(z1, z2, temperature=0.5):
    os.environ["DRILLS_TEST_NEW"] = "1"
    return REFERENCE(z1, z2, temperature)


def changes_a_variable(z1, z2, temperature=0.5):
    os.environ["DRILLS_TEST_KEPT"] = "changed"
    return REFERENCE(z1, z2, temperature)


def removes_a_variable(z1, z2, temperature=0.5):
    os.environ.pop("DRILLS_TEST_KEPT", None)
    return REFERENCE(z1, z2, temperature)


def changes_directory(z1, z2, temperature=0.5):
    os.chdir(tempfile.gettempdir())
    return REFERENCE(z1, z2, temperature)


SETTINGS = {
    "torch.set_printoptions": (prints_with_two_digits, ["print options", "precision 4 -> 2"]),
    "warnings.simplefilter": (silences_warnings, ["warnings filters"]),
    "warnings.filters replaced": (replaces_the_warnings_filters, ["warnings filters"]),
    "torch.use_deterministic_algorithms": (turns_determinism_on,
                                           ["deterministic-algorithms mode went from off to on"]),
    "a variable set": (sets_a_variable, ["environment variables", "set: DRILLS_TEST_NEW"]),
    "a variable changed": (changes_a_variable, ["changed: DRILLS_TEST_KEPT"]),
    "a variable removed": (removes_a_variable, ["removed: DRILLS_TEST_KEPT"]),
    "os.chdir": (changes_directory, ["the working directory went from"]),
}


def _settings():
    opts = torch._tensor_str.PRINT_OPTS
    return ({k: getattr(opts, k) for k in ("precision", "threshold", "edgeitems", "linewidth",
                                            "sci_mode")},
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            id(warnings.filters), list(warnings.filters), dict(os.environ), os.getcwd())


@pytest.mark.parametrize("name", list(SETTINGS))
def test_a_changed_global_setting_fails_a_check_and_is_put_back(name, monkeypatch):
    monkeypatch.setenv("DRILLS_TEST_KEPT", "kept")
    fn, words = SETTINGS[name]
    before = _settings()
    report = grader.check("nt_xent_loss", fn)
    assert _settings() == before
    assert not report.passed
    assert "changes settings outside itself" in report.diagnosis, str(report)
    message = report.first_failure.message
    assert message.startswith("your code changed global state: "), message
    for word in words:
        assert word in message, message


LIBRARY = """
import os, warnings
os.environ["DRILLS_TEST_LIBRARY_CACHE"] = "/tmp"
warnings.filterwarnings("once", category=DeprecationWarning, module="drills_test_library")
"""


def test_what_a_first_import_sets_is_put_back_but_not_blamed(tmp_path, monkeypatch):
    # Like torch's compiler and sympy, imported by the first optimizer step of a check.
    (tmp_path / "drills_test_library.py").write_text(LIBRARY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "drills_test_library", raising=False)

    def imports_a_library(z1, z2, temperature=0.5):
        import drills_test_library  # noqa: F401

        return REFERENCE(z1, z2, temperature)

    before = _settings()
    report = grader.check("nt_xent_loss", imports_a_library)
    assert report.passed, str(report)
    assert _settings() == before


def test_correct_code_changes_no_setting():
    before = _settings()
    assert grader.check("nt_xent_loss", REFERENCE).passed
    assert _settings() == before


# -- 4. a stuck loop left behind -----------------------------------------------------------------


def _cpu_of_left_workers(seconds=0.3) -> float:
    """CPU seconds the grader's abandoned workers use, together, in `seconds` of waiting."""
    clocks = [sandbox._cpu_clock(t) for t in threading.enumerate() if t.name == "grader-check"]
    clocks = [c for c in clocks if c is not None]
    start = [c() for c in clocks]
    time.sleep(seconds)
    return sum(c() - s for c, s in zip(clocks, start))


def test_a_stuck_loop_left_behind_does_not_slow_later_checks():
    stop = threading.Event()  # ends the loop, whatever the grader did with it

    def stuck():
        while not stop.is_set():
            try:
                while not stop.is_set():
                    pass
            except BaseException:
                continue

    before = _best_time(REFERENCE)
    try:
        with REGISTRY.registered(_one_check("stuck_loop", 0.3)):
            first = grader.check("stuck_loop", stuck).results[0]
        assert first.timed_out and "ignored every request to stop" in first.message
        after = _best_time(REFERENCE)
        assert after <= 3 * before + 0.5, f"{before:.3f} s before the stuck loop, {after:.3f} after"
        assert _cpu_of_left_workers() < 0.05, "the abandoned loop still computes"
    finally:
        stop.set()


# A loop the grader cannot park: it runs in a file of torch's, not in the learner's code.
UNPARKABLE = """
def spin(stop):
    while not stop.is_set():
        try:
            while not stop.is_set():
                pass
        except BaseException:
            pass
"""


def test_a_loop_that_cannot_be_parked_gets_a_fair_share_of_the_gil_and_no_more():
    namespace = {}
    fake = os.path.join(os.path.dirname(torch.__file__), "_drills_spin.py")
    exec(compile(UNPARKABLE, fake, "exec"), namespace)
    before = _best_time(REFERENCE)
    stop = threading.Event()
    spinner = threading.Thread(target=namespace["spin"], args=(stop,), daemon=True)
    spinner.start()
    sandbox._LEFT[spinner] = (sandbox._cpu_clock(spinner), -1.0)  # as _abandon leaves it
    interval = sys.getswitchinterval()
    try:
        after = _best_time(REFERENCE)
        assert spinner.is_alive() and spinner in sandbox._LEFT  # not parked, still computing
        assert after <= 3 * before + 0.5, f"{before:.3f} s alone, {after:.3f} s beside the loop"
        assert sys.getswitchinterval() == interval
    finally:
        stop.set()
        spinner.join(5)
        sandbox._LEFT.pop(spinner, None)
