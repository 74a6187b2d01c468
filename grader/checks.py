"""The check registry: each graded name has a Checklist, and run() turns it into a Report."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import torch

from .report import FAIL, PASS, SKIP, TODO, CheckResult, Report
from .sandbox import Fail, GlobalState, NotImplementedYet, Timeout, run_with_limit

DEFAULT_TIMEOUT = 5.0  # seconds per check; a correct solution needs a small fraction of this


@dataclass
class Check:
    title: str
    fn: object
    diagnosis: str
    hint: str
    timeout: float = DEFAULT_TIMEOUT
    rng_allowed: bool = False
    # When the input itself is the point of the check (N = 1, say), a crash is most likely
    # that mistake, so the check's own diagnosis is shown instead of "it crashed".
    crash_means_mistake: bool = False


@dataclass
class Checklist:
    """All checks for one graded name, in the order a learner should read them."""

    graded_name: str
    drill: str
    kind: str = "function"  # or "class"
    probe: object = None  # tiny call used by ready(): raises NotImplementedError on a stub
    checks: list[Check] = field(default_factory=list)

    def add(self, title, *, diagnosis, hint, timeout=DEFAULT_TIMEOUT, rng_allowed=False,
            crash_means_mistake=False):
        """Decorator: register a check. It receives the learner's object; it raises Fail or returns
        an optional short message saying what it measured."""

        def register(fn):
            self.checks.append(
                Check(title, fn, diagnosis, hint, timeout, rng_allowed, crash_means_mistake)
            )
            return fn

        return register


REGISTRY: dict[str, Checklist] = {}


def checklist(graded_name, drill, **kwargs) -> Checklist:
    REGISTRY[graded_name] = Checklist(graded_name, drill, **kwargs)
    return REGISTRY[graded_name]


def _wrong_kind(cl: Checklist, obj) -> str:
    if cl.kind == "class":
        if not inspect.isclass(obj):
            return f"`{cl.graded_name}` should be a class, but got {type(obj).__name__}"
    elif not callable(obj) or inspect.isclass(obj):
        return f"`{cl.graded_name}` should be a function, but got {type(obj).__name__}"
    return ""


def _run_one(check: Check, obj) -> CheckResult:
    result = CheckResult(name=check.title, passed=False, status=FAIL)
    outer = GlobalState.capture()
    changes: list[str] = []

    def body():
        # Runs in the worker thread, whose grad mode is its own: compare state here.
        before = GlobalState.capture()
        try:
            return check.fn(obj)
        finally:
            changes.extend(before.changes_since(GlobalState.capture(),
                                               rng_allowed=check.rng_allowed))
            before.restore()

    start = time.perf_counter()
    try:
        message = run_with_limit(body, check.timeout)
        result.passed, result.status = True, PASS
        result.message = message if isinstance(message, str) else ""
    except NotImplementedYet:
        result.status = TODO
        result.message = "not implemented yet"
    except Fail as f:
        result.message = f.message
        own = f.diagnosis is None or (f.crashed and check.crash_means_mistake)
        result.diagnosis = check.diagnosis if own else f.diagnosis
        result.hint = check.hint if own or f.hint is None else f.hint
        result.measured, result.expected = f.measured, f.expected
        result.conclusive = f.conclusive
    except Timeout as t:
        result.message = f"did not finish within {check.timeout:g} s and was stopped"
        if t.still_running:
            result.message = (
                f"did not finish within {check.timeout:g} s and ignored every request to stop: "
                "it is still running in the background, so restart the kernel before going on"
            )
        result.diagnosis = "the code never returns, or is far too slow (an endless loop?)"
        result.hint = "look for a loop whose condition never changes; vectorise Python loops"
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a learner exception that escaped `call`, or SystemExit
        result.message = f"your code raised {type(exc).__name__}: {exc}"
        result.diagnosis = "the function crashed"
        result.hint = check.hint
    finally:
        result.seconds = time.perf_counter() - start
        outer.restore()
    if changes and result.status == PASS:
        result.passed, result.status = False, FAIL
        result.message = "your code changed global torch state: " + "; ".join(changes)
        result.diagnosis = "the function changes settings outside itself"
        result.hint = "a graded function should not set global torch options or seeds"
    return result


def run(graded_name: str, obj) -> Report:
    """Run every check for `graded_name` on the learner's object. Never raises."""
    if graded_name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        return Report(graded_name, problem=f"no checks for '{graded_name}' (known: {known})")
    cl = REGISTRY[graded_name]
    report = Report(graded_name)
    problem = _wrong_kind(cl, obj)
    if problem:
        report.problem = problem
        report.results = [
            CheckResult(c.title, False, "not run", status=SKIP) for c in cl.checks
        ]
        return report
    timed_out = False
    for check in cl.checks:
        if timed_out:
            report.results.append(
                CheckResult(check.title, False, "not run: an earlier check never finished",
                            status=SKIP)
            )
            continue
        result = _run_one(check, obj)
        timed_out = result.message.startswith("did not finish")
        report.results.append(result)
    return report


def ready(graded_name: str, obj) -> bool:
    """False (and one line printed) when obj is still an untouched stub.

    Demo cells start with `if grader.ready(...)`: a learner who runs the notebook top to bottom
    before writing anything sees which function to write first instead of a traceback.
    """
    cl = REGISTRY.get(graded_name)
    if cl is None or cl.probe is None:
        return True
    state = GlobalState.capture()
    try:
        run_with_limit(lambda: cl.probe(obj), 30.0)
    except NotImplementedError:
        print(f"Implement `{graded_name}` first (Part 3): this cell uses it.")
        return False
    except BaseException:  # any other error shows up, with its traceback, when the demo runs
        return True
    finally:
        state.restore()
    return True


def small_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
