"""Running untrusted learner code: time limits, errors as messages, global state restored."""

from __future__ import annotations

import ctypes
import os
import random
import threading
import traceback
from dataclasses import dataclass

import numpy as np
import torch


class Timeout(BaseException):
    """Raised inside learner code when a check runs past its time limit.

    A BaseException, so that a learner's `except Exception:` cannot swallow it. `still_running`
    is True when the code caught even this and had to be abandoned, still running.
    """

    def __init__(self, still_running: bool = False):
        super().__init__()
        self.still_running = still_running


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


def run_with_limit(fn, seconds: float):
    """Call fn() in a worker thread and return its value; raise Timeout after `seconds`.

    On time-out an exception is injected into the worker, and again every 0.1 s for a second,
    which stops any Python loop that does not swallow it. A worker that still runs after that
    (a bare `except:` inside an endless loop, or one long C call) is abandoned as a daemon
    thread: the grader still returns on time. The worker has its own grad mode, so state
    checks that involve it run inside fn.
    """
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="grader-check")
    worker.start()
    worker.join(seconds)
    for _ in range(10):
        if not worker.is_alive():
            break
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(worker.ident), ctypes.py_object(Timeout)
        )
        worker.join(0.1)
    if "error" in box and not isinstance(box["error"], Timeout):
        raise box["error"]
    if "value" in box:
        return box["value"]
    raise Timeout(still_running=worker.is_alive())


# -- global state --------------------------------------------------------------------------------


@dataclass
class GlobalState:
    default_dtype: torch.dtype
    grad_enabled: bool
    torch_rng: torch.Tensor
    numpy_rng: tuple
    python_rng: tuple

    @classmethod
    def capture(cls) -> GlobalState:
        return cls(
            default_dtype=torch.get_default_dtype(),
            grad_enabled=torch.is_grad_enabled(),
            torch_rng=torch.get_rng_state(),
            numpy_rng=np.random.get_state(),
            python_rng=random.getstate(),
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


# -- calling learner code ------------------------------------------------------------------------

_GRADER_DIR = os.path.dirname(os.path.abspath(__file__))


def _learner_frame(exc: BaseException) -> str:
    """Where in the learner's code the exception came from, e.g. 'line 7 in nt_xent_loss'."""
    frames = traceback.extract_tb(exc.__traceback__)
    theirs = [f for f in frames if not os.path.abspath(f.filename).startswith(_GRADER_DIR)]
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


def call(fn, *args, **kwargs):
    """Call learner code on copies-checked inputs; turn whatever goes wrong into a Fail.

    Tensor arguments are compared before and after, so an in-place change to an input is
    caught here, once, for every check.
    """
    before = {
        i: a.detach().clone() for i, a in enumerate(args) if isinstance(a, torch.Tensor)
    }
    before.update(
        {k: v.detach().clone() for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    )
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
    for key, old in before.items():
        new = args[key] if isinstance(key, int) else kwargs[key]
        if new.shape != old.shape or not torch.equal(new.detach(), old):
            name = f"argument {key + 1}" if isinstance(key, int) else f"`{key}`"
            raise Fail(
                f"{name} was changed in place by your function",
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
