"""Contrastive Drills grader: `grader.check(name, fn)` runs every check for a graded name."""

from . import drills  # noqa: F401  (registers every drill's checks)
from .checks import REGISTRY
from .checks import ready as _ready
from .checks import run as _run
from .report import CheckResult, Report

__all__ = ["check", "ready", "Report", "CheckResult", "REGISTRY"]
__version__ = "0.1.0"

from . import guard as _guard  # noqa: E402

_guard.arm()  # what the checks rely on, as imported: later learner calls are compared with it


def check(name: str, fn_or_class, drill: str | None = None) -> Report:
    """Grade the learner's `fn_or_class` against every check for `name`. Never raises.

    A name graded in two drills is checked against the list of `drill`, or of the drill whose
    clock this notebook started.
    """
    report = _run(name, fn_or_class, drill)
    try:
        from . import clock

        clock.record(report)
    except Exception:  # the clock is a convenience; grading must not depend on it
        pass
    return report


def ready(name: str, fn_or_class, drill: str | None = None) -> bool:
    """True once `fn_or_class` is implemented; otherwise prints which function to write first."""
    return _ready(name, fn_or_class, drill)
