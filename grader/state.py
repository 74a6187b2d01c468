"""The global state learner code can change behind the grader's back: captured before a check,
compared afterwards (a change is a failed check, in words), and restored whatever happened.

Some of it is per thread (grad mode, torch's OpenMP thread count), so it is captured in the
thread that runs the code; the rest is process-wide (default dtype, the random generators,
torch's print options and deterministic mode, the warnings filters, the environment variables,
the working directory), and is seen and restored alike from any thread: hence the lock that
runs checks one at a time (one_at_a_time).
"""

from __future__ import annotations

import os
import random
import sys
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

# torch.set_printoptions writes these fields of torch._tensor_str.PRINT_OPTS.
_PRINT_FIELDS = ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")
_NAMES_SHOWN = 4  # environment variables named in a message, at most


def _print_options() -> dict:
    opts = torch._tensor_str.PRINT_OPTS
    return {k: getattr(opts, k) for k in _PRINT_FIELDS if hasattr(opts, k)}


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the working directory was deleted
        return None


def _names(names) -> str:
    names = sorted(names)
    more = len(names) - _NAMES_SHOWN
    return ", ".join(names[:_NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _on_off(on: bool, warn_only: bool) -> str:
    return ("on (warn only)" if warn_only else "on") if on else "off"


@dataclass
class GlobalState:
    """The settings a graded function could change outside itself, as they were at one moment."""

    default_dtype: torch.dtype
    grad_enabled: bool
    torch_rng: torch.Tensor
    numpy_rng: tuple
    python_rng: tuple
    num_threads: int
    print_options: dict
    deterministic: tuple  # (torch.use_deterministic_algorithms on, its warn_only)
    warning_list: list  # the warnings.filters list itself: code may replace it...
    warning_filters: list  # ...or change what is in it
    environ: dict
    cwd: str | None
    modules: int  # how many modules are imported

    @classmethod
    def capture(cls) -> GlobalState:
        return cls(
            default_dtype=torch.get_default_dtype(),
            grad_enabled=torch.is_grad_enabled(),
            torch_rng=torch.get_rng_state(),
            numpy_rng=np.random.get_state(),
            python_rng=random.getstate(),
            num_threads=torch.get_num_threads(),
            print_options=_print_options(),
            deterministic=(torch.are_deterministic_algorithms_enabled(),
                           torch.is_deterministic_algorithms_warn_only_enabled()),
            warning_list=warnings.filters,
            warning_filters=list(warnings.filters),
            environ=dict(os.environ),
            cwd=_cwd(),
            modules=len(sys.modules),
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
        found += self._settings_changed(later)
        return found

    def _settings_changed(self, later: GlobalState) -> list[str]:
        """Changes to settings beyond torch's numbers: printing, determinism, warnings, the
        environment and the working directory.

        A module imported for the first time may set warnings filters and environment variables
        itself (sympy adds a filter, torch's compiler sets TORCHINDUCTOR_CACHE_DIR, when the first
        optimizer step imports them): after an import those are put back but not blamed. Imports
        happen once, so the learner's own change is blamed in the next check.
        """
        found = []
        imported = later.modules > self.modules
        printing = [f"{k} {v!r} -> {later.print_options.get(k)!r}"
                    for k, v in self.print_options.items() if later.print_options.get(k) != v]
        if printing:
            found.append(f"torch's print options changed ({', '.join(printing)}; "
                         "torch.set_printoptions)")
        if later.deterministic != self.deterministic:
            was, now = (_on_off(*d) for d in (self.deterministic, later.deterministic))
            found.append(f"torch's deterministic-algorithms mode went from {was} to {now} "
                         "(torch.use_deterministic_algorithms)")
        if not imported and (later.warning_list is not self.warning_list
                             or later.warning_filters != self.warning_filters):
            found.append("the warnings filters were changed (warnings.simplefilter or "
                         "warnings.filterwarnings outside a `with warnings.catch_warnings():`)")
        env = "" if imported else self._environ_changed(later.environ)
        if env:
            found.append(f"environment variables were changed ({env}; os.environ)")
        if later.cwd != self.cwd:
            found.append(f"the working directory went from {self.cwd} to {later.cwd} (os.chdir)")
        return found

    def _environ_changed(self, later: dict) -> str:
        added = later.keys() - self.environ.keys()
        removed = self.environ.keys() - later.keys()
        changed = {k for k in later.keys() & self.environ.keys() if later[k] != self.environ[k]}
        return "; ".join(f"{what}: {_names(names)}" for what, names in
                         (("set", added), ("changed", changed), ("removed", removed)) if names)

    def restore(self) -> None:
        torch.set_default_dtype(self.default_dtype)
        torch.set_grad_enabled(self.grad_enabled)
        torch.set_rng_state(self.torch_rng)
        np.random.set_state(self.numpy_rng)
        random.setstate(self.python_rng)
        if torch.get_num_threads() != self.num_threads:
            torch.set_num_threads(self.num_threads)
        opts = torch._tensor_str.PRINT_OPTS
        for k, v in self.print_options.items():
            setattr(opts, k, v)
        if (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled()) != self.deterministic:
            torch.use_deterministic_algorithms(self.deterministic[0],
                                               warn_only=self.deterministic[1])
        self._restore_process()

    def _restore_process(self) -> None:
        """The warnings filters, the environment variables and the working directory."""
        if warnings.filters is not self.warning_list or warnings.filters != self.warning_filters:
            warnings.filters = self.warning_list
            self.warning_list[:] = self.warning_filters
            # Drop the caches of warnings already shown once (a private hook, hence getattr).
            getattr(warnings, "_filters_mutated", lambda: None)()
        for k in os.environ.keys() - self.environ.keys():
            del os.environ[k]
        for k, v in self.environ.items():
            if os.environ.get(k) != v:
                os.environ[k] = v
        if self.cwd is not None and _cwd() != self.cwd:
            try:
                os.chdir(self.cwd)
            except OSError:  # the directory itself was removed: nothing to go back to
                pass


# -- one check at a time -------------------------------------------------------------------------

_SERIAL = threading.RLock()


@contextmanager
def one_at_a_time():
    """Hold the grader's process-wide lock for a with-block: checks run one at a time.

    What a check compares before and after (torch's random generator, the default dtype, the
    environment...) is process-wide, so two checks at once, from two threads, would each take
    the other's random numbers for their own code's. Re-entrant; a check's own worker thread
    (learner code that calls grader.check) does not wait for the check it runs in.
    """
    if getattr(threading.current_thread(), "grader_worker", False):
        yield
        return
    with _SERIAL:
        yield
