"""Running untrusted learner code: time limits, errors as messages, global state restored."""

from __future__ import annotations

import ctypes
import os
import sys
import sysconfig
import threading
import time
import traceback
from contextlib import contextmanager

import torch

from . import guard
from .state import GlobalState, one_at_a_time  # noqa: F401  (grader.sandbox.GlobalState)


class Timeout(BaseException):
    """Raised inside learner code when a check runs past its time limit.

    A BaseException, so that a learner's `except Exception:` cannot swallow it. Once it reaches
    the grader it says which limit was hit: `limit` is "cpu" (the worker thread computed for
    longer than the check allows) or "wall" (the generous wall-clock backstop, for code that
    sleeps or waits); `cpu` and `wall` are the seconds used of each. `still_running` is True
    when the code did not stop when asked and had to be abandoned; `busy` then tells whether it
    was still computing (a loop that swallows every stop) or blocked in one long call.
    """

    def __init__(self, limit="cpu", *, seconds=0.0, cpu=0.0, wall=0.0, still_running=False,
                 busy=False):
        super().__init__()
        self.limit, self.seconds = limit, seconds
        self.cpu, self.wall = cpu, wall
        self.still_running, self.busy = still_running, busy


class Fail(Exception):
    """A check failed: what was measured and, when the check can tell, the likely mistake."""

    def __init__(self, message, *, diagnosis=None, hint=None, measured=None, expected=None,
                 crashed=False, conclusive=True):
        super().__init__(message)
        # conclusive=False: the check saw something wrong but cannot tell what; the report's
        # headline then prefers a later check that can.
        self.conclusive = conclusive
        self.crashed = crashed  # the learner's code raised (as opposed to returning a wrong value)
        self.message = message
        self.diagnosis = diagnosis
        self.hint = hint
        self.measured = "" if measured is None else str(measured)
        self.expected = "" if expected is None else str(expected)


class NotImplementedYet(Exception):
    """The learner's function still raises NotImplementedError (an untouched stub)."""


# -- time limits ---------------------------------------------------------------------------------


def wall_backstop(cpu_seconds: float) -> float:
    """The wall-clock limit that goes with a CPU-time limit: generous, so that a busy machine
    (where a thread gets a fraction of a core) never stops correct code."""
    return max(3 * cpu_seconds, cpu_seconds + 3)


def _cpu_clock(thread: threading.Thread):
    """A function giving `thread`'s CPU seconds (0 once it ended), or None if the OS cannot tell."""
    try:
        clock = time.pthread_getcpuclockid(thread.ident)
        time.clock_gettime(clock)
    except (AttributeError, OSError, TypeError):
        return None

    def read():
        try:
            return time.clock_gettime(clock)
        except OSError:  # the thread has ended
            return 0.0

    return read


_POLL = 0.02  # seconds between looks at a running worker
_GRACE = 3.0  # seconds a timed-out worker gets to act on the stop before it is abandoned
_SHORT_GRACE = 1.0  # the same after a Ctrl-C; and what a computing worker gets to park in
_FAIR_SWITCH = 1e-5  # sys.setswitchinterval while an abandoned worker still computes

_PARKED: set[int] = set()  # idents of abandoned workers now waiting for good
_LEFT: dict = {}  # abandoned workers not parked (yet): thread -> (CPU clock, CPU when left)


class _Parked(BaseException):
    """Injected into a worker that ignored every Timeout. Python builds it in the thread that
    raises it, before any `except` sees it, so this waits there for good: the worker stops
    computing and holding the GIL (a spinning loop makes checks wait 5 ms at each torch call).
    It parks only in a learner frame with no importlib or logging caller (whose lock would stay
    held); elsewhere it is just raised, and injected again later."""

    def __init__(self, *args):
        frame = sys._getframe(1)  # where the exception is being raised
        if _is_learner_file(frame.f_code.co_filename) and not any(
                f"{os.sep}{lib}" in f.f_code.co_filename for f, _ in traceback.walk_stack(frame)
                for lib in ("importlib", "logging")):
            _PARKED.add(threading.get_ident())
            threading.Event().wait()  # never set
        super().__init__(*args)


def _inject(worker: threading.Thread, exc: type) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(exc))


def _stop(worker: threading.Thread, grace: float) -> None:
    """Inject Timeout into the worker every 0.1 s until it ends or `grace` seconds pass."""
    deadline = time.perf_counter() + grace
    while worker.is_alive() and time.perf_counter() < deadline:
        _inject(worker, Timeout)
        worker.join(0.1)


def _abandon(worker: threading.Thread, busy: bool) -> None:
    """Park a worker that did not stop (see _Parked): one that computes gets a second for it,
    one blocked in a long call parks when it returns. One not parked yet is kept in _LEFT."""
    deadline = time.perf_counter() + (_SHORT_GRACE if busy else 0.0)
    while worker.is_alive() and worker.ident not in _PARKED:
        _inject(worker, _Parked)
        if time.perf_counter() >= deadline:
            clock = _cpu_clock(worker)
            _LEFT[worker] = (clock, float("-inf") if busy or clock is None else clock())
            return
        time.sleep(0.01)


@contextmanager
def _fair_share():
    """Yield how many abandoned workers compute on, each asked to park again; while any does,
    threads switch every 10 microseconds, not 5 ms, so a check waits less for the GIL."""
    spinning = 0
    for thread, (clock, left_at) in list(_LEFT.items()):
        if not thread.is_alive() or thread.ident in _PARKED:
            del _LEFT[thread]
            continue
        _inject(thread, _Parked)
        spinning += clock is None or clock() - left_at > 0.05
    interval = sys.getswitchinterval()
    if spinning:
        sys.setswitchinterval(min(interval, _FAIR_SWITCH))
    try:
        yield spinning
    finally:
        sys.setswitchinterval(interval)


def _handed_back(exc: BaseException) -> BaseException:
    """The worker's exception, for the caller. Ctrl-C reaches the main thread only, so the
    worker's KeyboardInterrupt was raised by its code: a failed check, not an interrupt."""
    if not isinstance(exc, KeyboardInterrupt):
        return exc
    return Fail(f"your code raised KeyboardInterrupt{_learner_frame(exc)}", hint="only Ctrl-C "
                "should raise KeyboardInterrupt: remove the `raise`", diagnosis="the function "
                "raises KeyboardInterrupt (as if Ctrl-C had been pressed) instead of returning")


def run_with_limit(fn, seconds: float, *, wall_seconds: float | None = None):
    """Call fn() in a worker thread and return its value; raise Timeout past the limits.

    `seconds` limits the worker thread's own CPU time, so a busy machine, where the thread waits
    for a core, never stops correct code. `wall_seconds` (default: wall_backstop's, times one
    plus the abandoned workers still computing) stops code that sleeps or blocks. Where the OS
    cannot measure a thread's CPU time, the limit counts wall-clock time instead.

    On time-out (or a Ctrl-C in the caller, raised then) an exception is injected into the
    worker every 0.1 s for up to three seconds: that stops any Python loop that does not swallow
    it, and a sleep or a long C call as it returns. A worker still running is then abandoned,
    parked (_Parked). The worker has its own grad mode: state checks involving it run in fn.
    """
    box = {}
    done = threading.Event()  # not worker.is_alive(): a Ctrl-C during join() can falsify that

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller's thread below
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=target, daemon=True, name="grader-check")
    worker.grader_worker = True
    with _fair_share() as spinning:
        wall_seconds = wall_backstop(seconds) if wall_seconds is None else wall_seconds
        wall_seconds *= 1 + spinning  # the GIL is shared with them
        started = time.perf_counter()
        worker.start()
        cpu_time = _cpu_clock(worker)

        def used():
            wall = time.perf_counter() - started
            return (cpu_time() if cpu_time else wall), wall

        limit = None
        try:
            while limit is None and not done.wait(_POLL):
                cpu, wall = used()
                limit = "cpu" if cpu > seconds else "wall" if wall > wall_seconds else None
            if limit is None:
                if "error" in box:
                    raise _handed_back(box["error"])
                return box.get("value")
            cpu, wall = used()
            _stop(worker, _GRACE)
        except KeyboardInterrupt:  # Ctrl-C in the caller: stop the worker, then stop as asked
            cpu = used()[0]
            _stop(worker, _SHORT_GRACE)
            if worker.is_alive():
                _abandon(worker, busy=used()[0] - cpu > 0.2 * _SHORT_GRACE)
            raise
        if not worker.is_alive() and "error" not in box and "value" in box:
            return box["value"]  # it finished on its own just as the limit passed
        if not worker.is_alive() and "error" in box and not isinstance(box["error"], Timeout):
            raise _handed_back(box["error"])
        alive = worker.is_alive()
        busy = alive and used()[0] - cpu > 0.2 * _GRACE
        if alive:
            _abandon(worker, busy)
    raise Timeout(limit, seconds=seconds if limit == "cpu" else wall_seconds, cpu=cpu, wall=wall,
                  still_running=alive, busy=busy)


# -- calling learner code ------------------------------------------------------------------------

_GRADER_DIR = os.path.dirname(os.path.abspath(__file__))
# Where library code lives: a frame outside these (and outside the grader) is the learner's.
_LIBRARY_DIRS = tuple(
    os.path.abspath(p) + os.sep
    for p in {*(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")),
              os.path.dirname(os.path.dirname(os.path.abspath(torch.__file__)))}
)


def _is_learner_file(filename: str) -> bool:
    path = os.path.abspath(filename)
    return not (path.startswith(_GRADER_DIR + os.sep) or path.startswith(_LIBRARY_DIRS))


def raised_in_learner_code(exc: BaseException) -> bool:
    """True when a frame of the exception's traceback is the learner's code (a notebook cell,
    their module), False when it came from the grader's own work or a library it called."""
    return any(_is_learner_file(f.filename) for f in traceback.extract_tb(exc.__traceback__))


def _learner_frame(exc: BaseException) -> str:
    """Where in the learner's code the exception came from, e.g. 'line 7 in nt_xent_loss'."""
    frames = traceback.extract_tb(exc.__traceback__)
    theirs = [f for f in frames if _is_learner_file(f.filename)]
    frame = (theirs or frames or [None])[-1]
    if frame is None:
        return ""
    return f" (line {frame.lineno} in {frame.name})"


def _crash(exc: BaseException) -> Fail:
    return Fail(
        f"your code raised {type(exc).__name__}: {exc}{_learner_frame(exc)}",
        diagnosis="the function crashed on a valid input",
        hint="run it on the input shown and read the traceback; check the shapes at each step",
        crashed=True,
    )


def _argument_name(key) -> str:
    return f"argument {key + 1}" if isinstance(key, int) else f"`{key}`"


def _snapshot(args, kwargs):
    """Copies of every tensor argument, also inside a list or tuple argument (views, say), and
    of each list argument's items, so that in-place changes can be found afterwards."""
    tensors, lists = [], []
    for key, value in [*enumerate(args), *kwargs.items()]:
        name = _argument_name(key)
        if isinstance(value, torch.Tensor):
            tensors.append((name, value, value.detach().clone()))
        elif isinstance(value, (list, tuple)):
            if isinstance(value, list):
                lists.append((name, value, list(value)))
            tensors += [(f"item {j} of {name}", item, item.detach().clone())
                        for j, item in enumerate(value) if isinstance(item, torch.Tensor)]
    return tensors, lists


def _changed_in_place(tensors, lists) -> str:
    for name, value, items in lists:
        if len(value) != len(items) or any(a is not b for a, b in zip(value, items)):
            return f"{name} (a list) was changed by your function: items added, removed or replaced"
    for name, tensor, old in tensors:
        if tensor.shape != old.shape or not torch.equal(tensor.detach(), old):
            return f"{name} was changed in place by your function"
    return ""


IN_PLACE_HINT = "build new tensors from the inputs instead of writing into them"


def call(fn, *args, **kwargs):
    """Call learner code on copies-checked inputs; turn whatever goes wrong into a Fail.

    Tensor arguments, and tensors inside list or tuple arguments, are compared before and after,
    so an in-place change to an input is caught here, once, for every check. Afterwards
    guard.verify() raises guard.Tampered if the code replaced what the checks rely on.
    """
    tensors, lists = _snapshot(args, kwargs)
    try:
        try:
            out = fn(*args, **kwargs)
        finally:
            guard.verify()  # before anything trusts a torch function again
    except guard.Tampered:
        raise
    except NotImplementedError as exc:
        raise NotImplementedYet(str(exc)) from None
    except (Timeout, KeyboardInterrupt):
        raise
    except TypeError as exc:
        if exc.__traceback__.tb_next is not None:  # raised inside their code, not by the call
            raise _crash(exc) from None
        raise Fail(
            f"calling it raised TypeError: {exc}",
            diagnosis="the function's signature differs from the one in the drill",
            hint="keep the parameter names and defaults exactly as given in the stub",
        ) from None
    except BaseException as exc:  # untrusted code: anything it raises is reported, not re-raised
        raise _crash(exc) from None
    changed = _changed_in_place(tensors, lists)
    if changed.endswith("items added, removed or replaced"):
        raise Fail(
            changed,
            diagnosis="the function modified the caller's list (.append(), .pop(), del, an "
            "in-place sort, or an item replaced)",
            hint="read the lists; build new ones if you need to",
        )
    if changed:
        raise Fail(
            changed,
            diagnosis="an in-place operation modified the caller's tensor "
            "(for example `z /= z.norm(...)`, `.div_()`, `.fill_diagonal_()` on an input)",
            hint=IN_PLACE_HINT,
        )
    return out


def scalar(out, what="the loss") -> torch.Tensor:
    """Insist on a finite 0-d tensor, with a message a learner understands when it is not."""
    if out is None:
        raise Fail(
            f"{what} is None",
            diagnosis="the function does not return anything (a missing `return`)",
            hint="end the function by returning the loss",
        )
    if not isinstance(out, torch.Tensor):
        raise Fail(
            f"{what} is a {type(out).__name__}, not a torch.Tensor",
            diagnosis="the result left torch (e.g. `.item()`, `float(...)`, numpy)",
            hint="return the tensor itself so that gradients can flow through it",
        )
    if out.dim() != 0:
        raise Fail(
            f"{what} has shape {tuple(out.shape)}; a scalar (shape ()) was expected",
            diagnosis="the per-row losses were not reduced to one number",
            hint="average over the anchors at the end",
            measured=tuple(out.shape),
            expected="()",
        )
    if not torch.isfinite(out):
        raise Fail(
            f"{what} is {out.item()}",
            diagnosis="the computation overflowed or divided by zero",
            hint="look for the exponential of large numbers, or a division by a norm that can be 0",
        )
    return out


def tensor_out(out, shape, what="the output") -> torch.Tensor:
    """Insist on a tensor of the given shape (None in `shape` matches any size)."""
    if out is None:
        raise Fail(f"{what} is None", diagnosis="the function does not return anything")
    if not isinstance(out, torch.Tensor):
        raise Fail(
            f"{what} is a {type(out).__name__}, not a torch.Tensor",
            diagnosis="the result is not a tensor",
        )
    if out.dim() != len(shape) or any(s is not None and s != o for s, o in zip(shape, out.shape)):
        raise Fail(
            f"{what} has shape {tuple(out.shape)}",
            diagnosis="the output has the wrong shape",
            measured=tuple(out.shape),
            expected=tuple("*" if s is None else s for s in shape),
        )
    return out
