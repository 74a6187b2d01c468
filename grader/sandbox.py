"""Running untrusted learner code: time limits, errors as messages, global state restored."""

from __future__ import annotations

import ctypes
import os
import random
import sysconfig
import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np
import torch


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
    """A function giving `thread`'s CPU time in seconds, or None where the OS cannot tell."""
    try:
        clock = time.pthread_getcpuclockid(thread.ident)
        time.clock_gettime(clock)
    except (AttributeError, OSError, TypeError):
        return None
    return lambda: time.clock_gettime(clock)


_POLL = 0.02  # seconds between looks at a running worker
_GRACE = 3.0  # seconds a timed-out worker gets to act on the stop before it is abandoned


def run_with_limit(fn, seconds: float, *, wall_seconds: float | None = None):
    """Call fn() in a worker thread and return its value; raise Timeout past the limits.

    `seconds` is a limit on the worker thread's own CPU time, so a busy machine, where the
    thread waits for a core, never stops correct code. `wall_seconds` (default: a generous
    backstop, see wall_backstop) stops code that sleeps or blocks without computing. Where the
    OS cannot measure a thread's CPU time, the limit counts wall-clock time instead.

    On time-out an exception is injected into the worker, again every 0.1 s, for up to three
    seconds: that stops any Python loop that does not swallow it, and a sleep or a long C call
    as soon as it returns. A worker that still runs after that is abandoned as a daemon thread:
    the grader still returns. The worker has its own grad mode, so state checks that involve
    it run inside fn.
    """
    wall_seconds = wall_backstop(seconds) if wall_seconds is None else wall_seconds
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="grader-check")
    started = time.perf_counter()
    worker.start()
    cpu_time = _cpu_clock(worker)

    def used():
        wall = time.perf_counter() - started
        try:
            return (cpu_time() if cpu_time else wall), wall
        except OSError:  # the thread ended between two looks
            return 0.0, wall

    limit = None
    while worker.is_alive():
        worker.join(_POLL)
        if not worker.is_alive():
            break
        cpu, wall = used()
        if cpu > seconds:
            limit = "cpu"
            break
        if wall > wall_seconds:
            limit = "wall"
            break
    if limit is None:
        if "error" in box:
            raise box["error"]
        return box.get("value")
    cpu, wall = used()
    deadline = time.perf_counter() + _GRACE
    while worker.is_alive() and time.perf_counter() < deadline:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(worker.ident), ctypes.py_object(Timeout)
        )
        worker.join(0.1)
    if not worker.is_alive() and "error" not in box and "value" in box:
        return box["value"]  # it finished on its own just as the limit passed
    if not worker.is_alive() and "error" in box and not isinstance(box["error"], Timeout):
        raise box["error"]
    later_cpu, _ = used()
    alive = worker.is_alive()
    raise Timeout(limit, seconds=seconds if limit == "cpu" else wall_seconds, cpu=cpu, wall=wall,
                  still_running=alive, busy=alive and later_cpu - cpu > 0.2 * _GRACE)


# -- global state --------------------------------------------------------------------------------


@dataclass
class GlobalState:
    default_dtype: torch.dtype
    grad_enabled: bool
    torch_rng: torch.Tensor
    numpy_rng: tuple
    python_rng: tuple
    num_threads: int

    @classmethod
    def capture(cls) -> GlobalState:
        return cls(
            default_dtype=torch.get_default_dtype(),
            grad_enabled=torch.is_grad_enabled(),
            torch_rng=torch.get_rng_state(),
            numpy_rng=np.random.get_state(),
            python_rng=random.getstate(),
            num_threads=torch.get_num_threads(),
        )

    def changes_since(self, later: GlobalState, *, rng_allowed: bool) -> list[str]:
        """What learner code changed in the global state, in words."""
        found = []
        if later.default_dtype != self.default_dtype:
            found.append(
                f"the default dtype went from {self.default_dtype} to {later.default_dtype} "
                "(torch.set_default_dtype)"
            )
        if later.grad_enabled != self.grad_enabled:
            found.append("gradient tracking was switched off and left off (torch.set_grad_enabled)")
        if later.num_threads != self.num_threads:
            found.append(
                f"torch's thread count went from {self.num_threads} to {later.num_threads} "
                "(torch.set_num_threads)"
            )
        if not rng_allowed and not torch.equal(later.torch_rng, self.torch_rng):
            found.append(
                "torch's global random generator moved (a call to torch.manual_seed, or random "
                "numbers drawn in a function that should be deterministic)"
            )
        return found

    def restore(self) -> None:
        torch.set_default_dtype(self.default_dtype)
        torch.set_grad_enabled(self.grad_enabled)
        torch.set_rng_state(self.torch_rng)
        np.random.set_state(self.numpy_rng)
        random.setstate(self.python_rng)
        if torch.get_num_threads() != self.num_threads:
            torch.set_num_threads(self.num_threads)


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


def call(fn, *args, **kwargs):
    """Call learner code on copies-checked inputs; turn whatever goes wrong into a Fail.

    Tensor arguments, and tensors inside list or tuple arguments, are compared before and after,
    so an in-place change to an input is caught here, once, for every check.
    """
    tensors, lists = _snapshot(args, kwargs)
    try:
        out = fn(*args, **kwargs)
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
            hint="build new tensors (z = z / ...) instead of writing into the inputs",
        )
    return out


def scalar(out, what="the loss") -> torch.Tensor:
    """Insist on a finite 0-d tensor, with a message a learner understands when it is not."""
    if out is None:
        raise Fail(
            f"{what} is None",
            diagnosis="the function does not return anything (a missing `return`)",
            hint="end the function with `return loss`",
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
            hint="look for exp() of large numbers or a norm that can be 0",
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
