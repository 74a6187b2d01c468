"""Tamper evidence: the objects the checks rely on, and whether code under test replaced any.

A check is only as good as the functions it calls: a graded function that sets
`torch.allclose = lambda *a, **k: True`, or swaps a grader function for one that always passes,
would turn every red row green. So the grader keeps a snapshot of every object the checks lean
on, compares it after each call of learner code (and before a report is built), puts back what
was replaced and marks the grade void, with the names of what changed.

Two comparisons:
- `Snapshot`: object identity, within one process, from the moment the grader was imported.
  Cheap enough to run after every learner call.
- `fingerprints()`: a description of each object that another process can compare (a Python
  function's code, a built-in's name). The command line takes them in its own fresh process
  and the kernel compares them before grading, which catches a patch made before the grader
  was imported there.

This is evidence, not a sandbox: code in the same process can always go deeper (rewrite the
interpreter's machinery, write memory through ctypes). README's "Grading a class" says what only
a container stops.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import types

# Modules whose functions and classes the checks call, directly or through torch.
LIBRARY_MODULES = (
    "torch", "torch.nn", "torch.nn.functional", "torch.linalg", "torch.autograd", "torch.optim",
    "torch.testing", "numpy", "numpy.linalg", "math", "json", "time", "threading", "inspect",
    "traceback", "random", "copy", "functools", "contextlib", "dataclasses",
    "ctypes", "builtins",
)
# Classes whose methods the checks call on tensors and modules.
LIBRARY_CLASSES = (
    ("torch", "Tensor"), ("torch._C", "TensorBase"), ("torch.nn", "Module"),
    ("torch.optim", "Optimizer"), ("torch", "Generator"), ("numpy", "ndarray"),
)
# Names rebound on their own: by IPython or ipykernel (the last result, input() forwarding), by
# torch (set_default_dtype rebinds torch.Storage).
_REBOUND_BY_JUPYTER = {
    "torch": {"Storage"},
    "builtins": {"_", "__", "___", "input", "exit", "quit", "help", "copyright", "credits",
                 "license", "display", "get_ipython", "__IPYTHON__", "getpass"},
}
# Grader globals that change by design.
_GRADER_STATE = {"grader.clock": {"_current"}, "grader.guard": {"_baseline"}}
_KINDS = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type,
          types.ModuleType, types.MethodDescriptorType, types.WrapperDescriptorType,
          types.GetSetDescriptorType, types.MemberDescriptorType, types.ClassMethodDescriptorType,
          types.MethodWrapperType, property, staticmethod, classmethod)


def _is_grader(name: str) -> bool:
    return name == "grader" or name.startswith("grader.")


def _owners(extra: dict | None = None) -> list[tuple[str, object, dict]]:
    """(label, owner, namespace) for every watched module and class that is loaded, and for
    the grader modules in `extra` (name -> module: a copy the notebook imported earlier)."""
    found = []
    for name in LIBRARY_MODULES:
        mod = sys.modules.get(name)
        if mod is not None:
            found.append((name, mod, vars(mod)))
    for modname, clsname in LIBRARY_CLASSES:
        cls = getattr(sys.modules.get(modname), clsname, None)
        if isinstance(cls, type):
            found.append((f"{modname}.{clsname}", cls, cls.__dict__))
    grader_modules = [(n, sys.modules[n]) for n in sorted(sys.modules) if _is_grader(n)]
    grader_modules += sorted((extra or {}).items())
    for name, mod in grader_modules:
        found.append((name, mod, vars(mod)))
        for value in list(vars(mod).values()):
            if isinstance(value, type) and value.__module__ == name:
                found.append((f"{name}.{value.__qualname__}", value, value.__dict__))
    return found


def _watched(label: str, key: str, value) -> bool:
    if key in _REBOUND_BY_JUPYTER.get(label, ()) or key in _GRADER_STATE.get(label, ()):
        return False
    if _is_grader(label):
        return True  # every grader global, data too
    return isinstance(value, _KINDS)


def _checklists() -> list:
    checks = sys.modules.get("grader.checks")
    registry = getattr(checks, "REGISTRY", None)
    return registry.values() if registry is not None else []


def _registry_map() -> dict:
    checks = sys.modules.get("grader.checks")
    registry = getattr(checks, "REGISTRY", None)
    if registry is None:
        return {}
    return {(d, n): cl for d, names in registry._drills.items() for n, cl in names.items()}


def _checklist_state(cl) -> tuple:
    return (cl.graded_name, cl.drill, cl.kind, cl.smoke,
            tuple((c, c.fn, c.title, c.timeout, c.rng_allowed) for c in cl.checks))


def _torch_rewrapped(old, new) -> bool:
    """True when torch itself wrapped `old` (torch._dynamo, once imported, wraps a few torch
    functions such as manual_seed with functools.wraps): the wrapper is torch's own code and
    its __wrapped__ chain leads back to the original."""
    torch = sys.modules.get("torch")
    code = getattr(new, "__code__", None)
    if torch is None or not isinstance(code, types.CodeType):
        return False
    if not code.co_filename.startswith(os.path.dirname(torch.__file__) + os.sep):
        return False
    inner = new
    for _ in range(8):
        inner = getattr(inner, "__wrapped__", None)
        if inner is old:
            return True
        if inner is None:
            return False
    return False


class Snapshot:
    """Every watched object as it is now; `changes()` names what was replaced since."""

    def __init__(self, extra: dict | None = None):
        self.entries = [(label, owner, key, value)
                        for label, owner, space in _owners(extra)
                        for key, value in list(space.items()) if _watched(label, key, value)]
        self.checklists = [(cl, list(cl.checks), _checklist_state(cl)) for cl in _checklists()]
        self.registry = _registry_map()

    def changes(self) -> list[str]:
        """What was replaced or removed since the snapshot, e.g. 'torch.allclose'."""
        found = []
        missing = object()
        for i, (label, owner, key, value) in enumerate(self.entries):
            now = owner.__dict__.get(key, missing)
            if now is value:
                continue
            if _torch_rewrapped(value, now):
                self.entries[i] = (label, owner, key, now)  # torch's own doing: the new normal
            else:
                found.append(f"{label}.{key}")
        for cl, _checks, state in self.checklists:
            if _checklist_state(cl) != state:
                found.append(f"the checks of `{cl.graded_name}` ({cl.drill})")
        now = _registry_map()
        if any(now.get(k) is not cl for k, cl in self.registry.items()):
            found.append("the grader's registry of checks")
        return found

    def restore(self) -> None:
        """Put back everything `changes()` would name."""
        missing = object()
        for _label, owner, key, value in self.entries:
            if owner.__dict__.get(key, missing) is not value:
                try:
                    setattr(owner, key, value)
                except (AttributeError, TypeError):
                    pass  # a built-in type refuses: changes() keeps naming it
        for cl, checks, state in self.checklists:
            cl.graded_name, cl.drill, cl.kind, cl.smoke = state[:4]
            cl.checks[:] = checks
            for check, fn, title, timeout, rng_allowed in state[4]:
                check.fn, check.title, check.timeout, check.rng_allowed = (
                    fn, title, timeout, rng_allowed)
        checks = sys.modules.get("grader.checks")
        registry = getattr(checks, "REGISTRY", None)
        if registry is not None:
            for (drill, name), cl in self.registry.items():
                registry._drills.setdefault(drill, {})[name] = cl


class Tampered(BaseException):
    """Raised once learner code is found to have replaced what the checks rely on.

    A BaseException, so that no `except Exception` in a check or in learner code turns it into an
    ordinary failure; the grader catches it and marks the grade void.
    """

    def __init__(self, what: list[str]):
        super().__init__(", ".join(what))
        self.what = list(what)


def void_reason(what: list[str]) -> str:
    shown = ", ".join(what[:4]) + (f" and {len(what) - 4} more" if len(what) > 4 else "")
    return (f"the code under test replaced what the grader relies on ({shown}); the grade is "
            "void")


_baseline: Snapshot | None = None
_found: list[str] = []  # every detection in this process, in order (repeats kept)


def arm(extra: dict | None = None) -> None:
    """Take the snapshot later calls compare against (the grader calls this once imported).
    `extra`: grader modules no longer in sys.modules that learner code may still reach (the
    copy a notebook imported before the grading cell imported the grader afresh)."""
    global _baseline
    _baseline = Snapshot(extra)


def verify() -> None:
    """Raise Tampered (after putting the originals back) when anything watched was replaced."""
    if _baseline is None:
        return
    what = _baseline.changes()
    if what:
        _baseline.restore()
        _found.extend(what)
        raise Tampered(what)


def detections() -> int:
    """A mark to pass to since()."""
    return len(_found)


def since(mark: int) -> list[str]:
    """What was found replaced after `mark` (checking once more now), each name once."""
    try:
        verify()
    except Tampered:
        pass
    return list(dict.fromkeys(_found[mark:]))


def found() -> list[str]:
    """Everything found replaced so far in this process (kept after it was put back)."""
    return since(0)


# -- comparing two processes ------------------------------------------------------------------


def _describe(value) -> str:
    inner = getattr(value, "__wrapped__", None)
    if inner is not None and _torch_rewrapped(inner, value):
        return _describe(inner)
    code = getattr(value, "__code__", None)
    if isinstance(code, types.CodeType):
        digest = hashlib.sha1(code.co_code + repr(code.co_names).encode()).hexdigest()[:16]
        return f"py {code.co_filename}:{code.co_firstlineno} {code.co_name} {digest}"
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    if isinstance(value, type):
        return f"class {value.__module__}.{value.__qualname__}"
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if isinstance(value, (int, float, str, bytes, bool, type(None))):
        return f"{type(value).__name__} {value!r}"[:200]
    if name is None and isinstance(value, (property, staticmethod, classmethod)):
        inner = getattr(value, "fget", None) or getattr(value, "__func__", None)
        return f"{type(value).__name__} of {_describe(inner)}" if inner else type(value).__name__
    return f"{type(value).__module__}.{type(value).__qualname__} {name}"


def fingerprints() -> dict[str, str]:
    """A description of every watched function and class, comparable across processes."""
    out = {}
    for label, _owner, space in _owners():
        for key, value in list(space.items()):
            if _watched(label, key, value) and (not _is_grader(label) or callable(value)
                                                or inspect.ismodule(value)):
                out[f"{label}.{key}"] = _describe(value)
    return out


def differences(trusted: dict[str, str]) -> list[str]:
    """The watched names whose description here differs from `trusted` (taken elsewhere)."""
    here = fingerprints()
    return sorted(k for k, v in here.items() if k in trusted and trusted[k] != v)
