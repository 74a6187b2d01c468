"""What runs inside the learner's kernel: the checks, and one marked line of results.

The grading cell first sets aside every grader module the notebook imported (and perhaps
patched), imports the grader afresh from disk, and compares what the checks rely on with the
fingerprints the command line took in its own clean process. Then it grades, and prints one
line: MARK, this run's nonce, the JSON. The command line accepts exactly that one line.
"""

from __future__ import annotations

import json
import sys

from .results import MARK

# -- inside the kernel ------------------------------------------------------------------------


def _before_grading(trusted_path: str | None, earlier: dict) -> list[str]:
    """What the notebook replaced before grading began: in the grader modules it had imported,
    and in torch and the other libraries the checks rely on."""
    from .. import guard

    if not trusted_path:
        return []
    with open(trusted_path) as f:
        trusted = json.load(f)
    now = dict(sys.modules)
    try:
        # Describe the modules the notebook had, under their own names, then the fresh ones.
        sys.modules.update(earlier)
        replaced = guard.differences(trusted) if earlier else []
    finally:
        sys.modules.update({k: v for k, v in now.items() if k in earlier})
    return sorted(set(replaced) | set(guard.differences(trusted)))


def grade_namespace(namespace: dict, names, *, nonce: str = "", trusted_path: str | None = None,
                    earlier: dict | None = None) -> str:
    """Grade the names found in a kernel's namespace; return the marked JSON line. Never raises.

    `names` is a list of graded names or of (graded name, drill) pairs; None means every
    registered name the namespace defines. `trusted_path` is a JSON file of guard.fingerprints()
    taken by the command line; `earlier` the grader modules the notebook itself had imported.
    """
    try:
        from .. import guard
        from ..checks import REGISTRY, run

        void = _before_grading(trusted_path, earlier or {})
        guard.arm(earlier)  # the notebook's own grader modules are watched as well
        if names is None:
            names = [n for n in REGISTRY if n in namespace]
        out = []
        for item in names:
            name, drill = (item, None) if isinstance(item, str) else item
            if name not in namespace:
                out.append({"graded_name": name, "drill": drill, "missing": True})
                continue
            report = run(name, namespace[name], drill)
            out.append({**report.to_dict(), "drill": drill})
        void += [w for w in guard.found() if w not in void]
        payload = {"ok": True, "reports": out}
        if void:
            payload["void"] = guard.void_reason(void)
    except BaseException as exc:  # the grader must report, whatever the notebook did
        payload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return "\n" + MARK + nonce + " " + json.dumps(payload) + "\n"


# The command line fills in the plan, this run's nonce and the fingerprint file's path.
GRADING_CELL = """\
def __contrastive_drills_grade__(plan, nonce, trusted_path):
    import sys
    earlier = {{k: sys.modules.pop(k) for k in list(sys.modules)
               if k == "grader" or k.startswith("grader.")}}
    from grader.grade.inside import grade_namespace
    line = grade_namespace(globals(), plan, nonce=nonce, trusted_path=trusted_path,
                           earlier=earlier)
    sys.stdout.write(line)
    sys.stdout.flush()
__contrastive_drills_grade__({plan!r}, {nonce!r}, {trusted_path!r})
"""
