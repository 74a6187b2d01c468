"""What runs inside the learner's kernel: the checks, and one marked line of results."""

from __future__ import annotations

import json

from .results import MARK

# -- inside the kernel ------------------------------------------------------------------------


def grade_namespace(namespace: dict, names: list[str] | None) -> str:
    """Grade the names found in a kernel's namespace; return the marked JSON line. Never raises.

    `names=None` means: every registered name the namespace defines.
    """
    try:
        from ..checks import REGISTRY, run

        if names is None:
            names = [n for n in REGISTRY if n in namespace]
        out = []
        for name in names:
            if name not in namespace:
                out.append({"graded_name": name, "missing": True})
                continue
            out.append(run(name, namespace[name]).to_dict())
        payload = {"ok": True, "reports": out}
    except BaseException as exc:  # the grader must report, whatever the notebook did
        payload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return "\n" + MARK + json.dumps(payload) + "\n"


GRADING_CELL = """\
def __contrastive_drills_grade__(names):
    import sys
    from grader.grade import grade_namespace
    sys.stdout.write(grade_namespace(globals(), names))
    sys.stdout.flush()
__contrastive_drills_grade__({names!r})
"""


