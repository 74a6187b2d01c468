"""The check registry: each graded name has a Checklist, and run() turns it into a Report."""

from __future__ import annotations

import inspect
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from . import guard
from .report import FAIL, PASS, SKIP, TODO, CheckResult, Report
from .sandbox import (
    Fail,
    GlobalState,
    NotImplementedYet,
    Timeout,
    one_at_a_time,
    raised_in_learner_code,
    run_with_limit,
)

# CPU seconds per check (the worker thread's own time, so a busy machine does not count); a
# correct solution needs a small fraction of this. A wall-clock backstop of three times as much
# (sandbox.wall_backstop) stops code that sleeps or blocks.
DEFAULT_TIMEOUT = 5.0


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
    smoke: object = None  # a tiny call used by ready(): raises NotImplementedError on a stub
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


class Registry:
    """Every Checklist, by drill and then by graded name.

    A graded name is unique within its drill, and registering it twice there is an error. Two
    drills may grade the same name (`augment` in 02 and 05, say): `find(name, drill)` picks one,
    and without a drill the only drill that grades the name, or else the drill of the running
    clock. Iterating gives the graded names; `items()` and `values()` give every checklist.
    """

    def __init__(self):
        self._drills: dict[str, dict[str, Checklist]] = {}

    def add(self, cl: Checklist) -> Checklist:
        names = self._drills.setdefault(cl.drill, {})
        if cl.graded_name in names:
            raise ValueError(f"`{cl.graded_name}` is already graded in drill {cl.drill}: a name "
                             "is registered once per drill")
        names[cl.graded_name] = cl
        return cl

    def remove(self, cl: Checklist) -> None:
        names = self._drills.get(cl.drill, {})
        if names.get(cl.graded_name) is cl:
            del names[cl.graded_name]
            if not names:
                del self._drills[cl.drill]

    @contextmanager
    def registered(self, cl: Checklist):
        """`cl` registered for the length of a with-block (for tests)."""
        self.add(cl)
        try:
            yield cl
        finally:
            self.remove(cl)

    def drills(self) -> list[str]:
        return sorted(self._drills)

    def in_drill(self, drill: str) -> dict[str, Checklist]:
        return dict(self._drills.get(drill, {}))

    def drills_of(self, name: str) -> list[str]:
        return [d for d in self.drills() if name in self._drills[d]]

    def find(self, name: str, drill: str | None = None) -> Checklist | None:
        """The checklist for `name`; None when no drill grades it. Raises LookupError, with a
        message for the learner, when several drills grade it and none is chosen."""
        if drill is not None:
            return self._drills.get(drill, {}).get(name)
        owners = self.drills_of(name)
        if len(owners) <= 1:
            return self._drills[owners[0]][name] if owners else None
        from .clock import current

        running = current()
        if running is not None and running.drill in owners:
            return self._drills[running.drill][name]
        raise LookupError(f"`{name}` is graded in several drills ({', '.join(owners)}): say "
                          f'which, for example grader.check("{name}", fn, drill="{owners[0]}")')

    def values(self) -> list[Checklist]:
        return [cl for d in self.drills() for cl in self._drills[d].values()]

    def items(self) -> list[tuple[str, Checklist]]:
        return [(cl.graded_name, cl) for cl in self.values()]

    def __iter__(self):
        seen = []
        for cl in self.values():
            if cl.graded_name not in seen:
                seen.append(cl.graded_name)
        return iter(seen)

    def __contains__(self, name) -> bool:
        return bool(self.drills_of(name))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __getitem__(self, name: str) -> Checklist:
        cl = self.find(name)
        if cl is None:
            raise KeyError(name)
        return cl


REGISTRY = Registry()


def checklist(graded_name, drill, **kwargs) -> Checklist:
    """Register (and return) the checklist of `graded_name` in `drill`; twice is an error."""
    return REGISTRY.add(Checklist(graded_name, drill, **kwargs))


def _wrong_kind(cl: Checklist, obj) -> str:
    if cl.kind == "class":
        if not inspect.isclass(obj):
            return f"`{cl.graded_name}` should be a class, but got {type(obj).__name__}"
    elif not callable(obj) or inspect.isclass(obj):
        return f"`{cl.graded_name}` should be a function, but got {type(obj).__name__}"
    return ""


def _timeout_result(result: CheckResult, t: Timeout) -> None:
    """Say which limit was hit, how long the code took, and whether it is still running."""
    result.timed_out = True
    used = f"{t.cpu:.1f} s of CPU time in {t.wall:.1f} s"
    if t.limit == "wall":
        result.message = (
            f"was stopped at the {t.seconds:g} s wall-clock limit having used only {used}: "
            "it spends its time waiting (sleep, input, a lock, a file or the network), not "
            "computing"
        )
        result.diagnosis = "the code is slow because it waits for something instead of computing"
        result.hint = ("remove sleeps, prints in tight loops, waits for keyboard input, and "
                       "file or network access")
    else:
        result.message = f"used more than its {t.seconds:g} s of CPU time ({used}) and was stopped"
        result.diagnosis = "the code is far too slow, or never returns (an endless loop?)"
        result.hint = "look for a loop whose condition never changes; vectorise Python loops"
    if t.still_running and t.busy:
        result.message += (
            "; it ignored every request to stop and is still running in the background, so "
            "restart the kernel before going on"
        )
        result.diagnosis = "the code never returns and swallows the grader's stop (a bare except?)"
    elif t.still_running:
        result.message += (
            "; it is still inside one long call (a sleep, or one huge operation) and will stop "
            "when that returns"
        )


def _grader_error(exc: BaseException) -> tuple[str, str, str]:
    """The grader could not use the learner's result: say what is wrong with the result."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if any(w in low for w in ("double", "float", "half", "dtype", "scalar type", "long", "int")):
        why = "the result has another dtype than the check expects (for example float32 " \
              "from float64 inputs, or a float where an integer tensor is expected)"
        hint = "keep the dtype of the inputs; convert only where the contract says so"
    elif "device" in low:
        why = "the result is on another device than its inputs"
        hint = "create new tensors on the device of the inputs"
    elif any(w in low for w in ("size", "shape", "dimension", "broadcast")):
        why = "the result has another shape than the contract says"
        hint = "compare the shape you return with the docstring's"
    else:
        why = "the result is not what the contract describes, so it cannot be compared"
        hint = "check the type, shape, dtype and device of what you return against the docstring"
    return f"the grader could not compare your result ({type(exc).__name__}: {text})", why, hint


def _run_one(check: Check, obj) -> CheckResult:
    result = CheckResult(name=check.title, passed=False, status=FAIL)
    outer = GlobalState.capture()
    changes: list[str] = []
    # Checks run on one intra-op thread: tiny networks are as fast on one, the worker's CPU
    # time then measures all of the work, and a busy machine's cores are not fought over.
    torch.set_num_threads(1)
    inner = GlobalState.capture()

    def body():
        # Runs in the worker thread, whose grad mode (and OpenMP thread count) is its own.
        torch.set_num_threads(1)
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
        _timeout_result(result, t)
    except KeyboardInterrupt:
        raise
    except guard.Tampered as t:
        result.message = guard.void_reason(t.what)
        result.diagnosis = "the code under test tampered with the grader"
        result.hint = "a graded function computes its result and changes nothing else"
    except BaseException as exc:
        if raised_in_learner_code(exc) or isinstance(exc, SystemExit):
            # Learner code that escaped `call` (a method called directly), or SystemExit.
            result.message = f"your code raised {type(exc).__name__}: {exc}"
            result.diagnosis = "the function crashed"
            result.hint = check.hint
        else:  # the check's own comparison failed on what the learner returned
            result.message, result.diagnosis, result.hint = _grader_error(exc)
    finally:
        result.seconds = time.perf_counter() - start
        inner.restore()
        outer.restore()
    if changes and result.status == PASS:
        result.passed, result.status = False, FAIL
        result.message = "your code changed global state: " + "; ".join(changes)
        result.diagnosis = "the function changes settings outside itself"
        result.hint = ("a graded function should not change global settings (torch options, "
                       "seeds, warnings filters, environment variables, the working directory)")
    return result


def run(graded_name: str, obj, drill: str | None = None) -> Report:
    """Run every check for `graded_name` (in `drill`, when given) on the learner's object.

    Never raises, except KeyboardInterrupt for a Ctrl-C of the user's (the learner's code is
    stopped first). Checks run one at a time, whichever thread asks (sandbox.one_at_a_time).
    """
    with one_at_a_time():
        return _run_checklist(graded_name, obj, drill)


def _run_checklist(graded_name: str, obj, drill: str | None) -> Report:
    try:
        cl = REGISTRY.find(graded_name, drill)
    except LookupError as exc:
        return Report(graded_name, problem=str(exc))
    if cl is None:
        known = ", ".join(sorted(REGISTRY))
        where = f" in drill {drill}" if drill else ""
        return Report(graded_name,
                      problem=f"no checks for '{graded_name}'{where} (known: {known})")
    report = Report(graded_name)
    problem = _wrong_kind(cl, obj)
    if problem:
        report.problem = problem
        report.results = [
            CheckResult(c.title, False, "not run", status=SKIP) for c in cl.checks
        ]
        return report
    timed_out = False
    start = guard.detections()
    for check in cl.checks:
        if timed_out:
            report.results.append(
                CheckResult(check.title, False, "not run: an earlier check ran out of time",
                            status=SKIP)
            )
            continue
        result = _run_one(check, obj)
        timed_out = result.timed_out
        report.results.append(result)
    # Before the report is built: anything replaced, in a call or in a thread it left behind.
    tampered = guard.since(start)
    if tampered:
        report.void = guard.void_reason(tampered)
    return report


def ready(graded_name: str, obj, drill: str | None = None) -> bool:
    """False (and one line printed) when obj is still an untouched stub.

    Demo cells start with `if grader.ready(...)`: a learner who runs the notebook top to bottom
    before writing anything sees which function to write first instead of a traceback.
    """
    try:
        cl = REGISTRY.find(graded_name, drill)
    except LookupError:
        cl = None
    if cl is None or cl.smoke is None:
        return True
    with one_at_a_time():
        state = GlobalState.capture()
        try:
            run_with_limit(lambda: cl.smoke(obj), 30.0)
        except NotImplementedError:
            print(f"Implement `{graded_name}` first (Part 3): this cell uses it.")
            return False
        except KeyboardInterrupt:  # the user's Ctrl-C (the smoke call's own becomes a Fail)
            raise
        except BaseException:  # any other error shows up, with its traceback, when the demo runs
            return True
        finally:
            state.restore()
    return True

