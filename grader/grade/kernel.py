"""Driving one notebook: read it, run it in a fresh kernel, then grade what it defined."""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import clock
from ..report import Report
from ..status import (
    MISSING,
    NOT_GRADED,
    NOTEBOOK_CELL_ERRORS,
    NOTEBOOK_ERROR,
    NOTEBOOK_GRADABLE,
    NOTEBOOK_KERNEL_DIED,
    NOTEBOOK_TIMED_OUT,
    NOTEBOOK_UNREADABLE,
    NOTEBOOK_VOID,
    VOID,
)
from .choose import grading_plan
from .inside import GRADING_CELL
from .outputs import Tap, make_client
from .results import DEFAULT_TIMEOUT, GRADING_MARGIN, MARK, Graded, NotebookResult

# -- running one notebook ---------------------------------------------------------------------


def read_notebook(path: Path):
    """The notebook at `path` (validated), or raise ValueError saying why it cannot be read."""
    import nbformat

    if path.is_dir():
        raise ValueError("is a folder, not a notebook")
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot be read: {exc}") from exc
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # NotJSONError, ValidationError, a KeyError deep in nbformat, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"not a readable notebook ({first[:120]})") from exc
    return nb


def _kernel_env() -> dict:
    env = dict(os.environ)
    env[clock.ENV] = "off"
    # The kernel must import this very grader, even when it is not installed.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def _quiet_logger():
    import logging

    log = logging.getLogger("grader.grade.nbclient")
    log.setLevel(logging.CRITICAL)
    log.propagate = False
    return log


async def _await_reply(kc, seconds: float) -> bool:
    """Wait for the interrupted cell's reply. A request sent before it would be aborted: after
    an error, ipykernel drops every execute request already waiting in its queue."""
    from queue import Empty

    from nbclient.util import ensure_async

    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            msg = await ensure_async(kc.shell_channel.get_msg(timeout=left))
        except Empty:
            return False
        if msg.get("msg_type") == "execute_reply":
            return True
    return False


def _one_result(taps: dict[int, Tap], grading_index: int, nonce: str):
    """The grading cell's result, or (None, why) when the result lines cannot be trusted: the
    command line accepts exactly one marked line, with this run's nonce, from the grading cell."""
    genuine = MARK + nonce + " "
    ours = [line for line in taps.get(grading_index, Tap()).lines if line.startswith(genuine)]
    others = sum(t.marks for t in taps.values()) - len(ours)
    if others or len(ours) > 1:
        return None, ("a result line the grader did not write was printed (a forged or extra "
                      "result line)")
    if not ours:
        return None, None
    try:
        return json.loads(ours[0][len(genuine):]), None
    except ValueError:
        return None, "the grader's result line was cut short or changed"


def _row(report: dict, registry) -> Graded:
    name = report["graded_name"]
    cl = registry.find(name, report.get("drill"))
    if report.get("missing"):
        total = len(cl.checks) if cl is not None else 0
        return Graded(name, MISSING, 0, total, "",
                      f"`{name}` is not defined in the notebook (did its cell run?)")
    rebuilt = Report.from_dict(report)  # what the table says is what the Report says
    first = rebuilt.first_failure
    return Graded(name, rebuilt.status, rebuilt.n_passed, len(rebuilt.results),
                  first.name if first else "", rebuilt.diagnosis, rebuilt.to_dict())


def _not_graded(plan, registry, why, status=NOT_GRADED) -> list[Graded]:
    shown = why if status == VOID else f"not graded: {why}"
    return [Graded(n, status, 0, len(registry.find(n, d).checks), "", shown) for n, d in plan]


class _PinnedKernel:
    """A kernel manager that always starts this interpreter's ipykernel, whatever kernel specs
    the user has installed (a user-level "python3" spec from another environment would win
    otherwise, and grading would run on its torch, or not at all), through kernel_boot.py,
    which caps what a cell may print."""

    @staticmethod
    def make():
        from jupyter_client.kernelspec import KernelSpec
        from jupyter_client.manager import AsyncKernelManager

        class Pinned(AsyncKernelManager):  # the kind nbclient makes itself
            @property
            def kernel_spec(self):
                if self._kernel_spec is None:
                    self._kernel_spec = KernelSpec(
                        argv=[sys.executable, str(Path(__file__).with_name("kernel_boot.py")),
                              "-f", "{connection_file}"],
                        display_name=f"Python ({sys.executable})", language="python",
                        resource_dir="")
                return self._kernel_spec

        return Pinned(kernel_name="python3")


_trusted: dict[str, str] = {}


def grader_files_digest() -> str:
    """One digest of the grader's code and data on disk: the kernel imports the grader from
    there, so a notebook that rewrote a file (a check, a known answer) is found out."""
    import hashlib

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".json")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _trusted_file(scratch: str) -> str:
    """guard.fingerprints() of this process (it never runs learner code), for the kernel."""
    if not _trusted:
        from .. import guard
        from . import inside  # noqa: F401  (the modules the kernel will import, described too)

        _trusted.update(guard.fingerprints())
    path = os.path.join(scratch, f"trusted-{secrets.token_hex(8)}.json")
    with open(path, "w") as f:
        json.dump(_trusted, f)
    return path


DEMO_TAG = "demo"


def skipped_as_demo(cell) -> bool:
    """A cell `--skip-demos` leaves out: tagged `demo` (a training demonstration), or nothing
    but calls of grader.check and the clock (the notebook's own grader cells: the command line
    grades every name itself)."""
    if DEMO_TAG in cell.get("metadata", {}).get("tags", []):
        return True
    return _only_grader_calls(cell.source)


def _only_grader_calls(source: str) -> bool:
    import ast

    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    if not body:
        return False
    for stmt in body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        func = call.func if isinstance(call, ast.Call) else None
        owner = func.value if isinstance(func, ast.Attribute) else None
        if not (isinstance(owner, ast.Name) and owner.id in ("grader", "clock")
                and func.attr in ("check", "summary", "mark")):
            return False
    return True


def grade_notebook(path: Path, timeout: float = DEFAULT_TIMEOUT, registry=None,
                   display_name: str | None = None, skip_demos: bool = False) -> NotebookResult:
    """Execute a copy of the notebook in a fresh kernel and grade it. Never writes to `path`.

    `skip_demos` leaves out the cells skipped_as_demo() names, so only what defines the graded
    names runs."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbclient.util import run_sync

    if registry is None:
        from ..checks import REGISTRY as registry
    result = NotebookResult(display_name or str(path))
    t0 = time.monotonic()
    try:
        nb = read_notebook(path)
    except ValueError as exc:
        result.status, result.message = NOTEBOOK_UNREADABLE, str(exc)
        return result
    plan = grading_plan(nb, path, registry)
    on_disk = grader_files_digest()
    grading_budget = GRADING_MARGIN + sum(
        c.timeout for n, d in plan for c in registry.find(n, d).checks)
    if not plan:
        grading_budget += sum(c.timeout for cl in registry.values() for c in cl.checks)

    timed_out_in = died_in = None
    stuck = False
    reports, distrust = None, None
    n_cells = len(nb.cells)  # the grading cell is appended after these
    with tempfile.TemporaryDirectory(prefix="grader-") as scratch, \
            tempfile.TemporaryDirectory(prefix="grader-trust-") as private:
        client = make_client(
            nb, km=_PinnedKernel.make(), allow_errors=True, interrupt_on_timeout=False,
            shutdown_kernel="immediate", record_timing=False, log=_quiet_logger(),
            resources={"metadata": {"path": scratch}},
        )
        try:
            with client.setup_kernel(env=_kernel_env(), stderr=subprocess.DEVNULL):
                deadline = time.monotonic() + timeout  # the kernel's start-up is not counted
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type != "code" or (skip_demos and skipped_as_demo(cell)):
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        timed_out_in = index
                        break
                    client.timeout = max(1, math.ceil(remaining))
                    try:
                        client.execute_cell(cell, index)
                    except CellTimeoutError:
                        timed_out_in = index
                        run_sync(client.km.interrupt_kernel)()
                        stuck = not run_sync(_await_reply)(client.kc, 10.0)
                        break
                    except DeadKernelError:
                        died_in = index
                        break
                if stuck:
                    result.message = "it ignored the interrupt, so nothing could be graded"
                elif died_in is None:
                    # Made only now, after the notebook's own cells: nothing in them knew it.
                    nonce = secrets.token_hex(16)
                    grading = nbformat.v4.new_code_cell(GRADING_CELL.format(
                        plan=plan or None, nonce=nonce, trusted_path=_trusted_file(private)))
                    nb.cells.append(grading)
                    client.timeout = math.ceil(grading_budget)
                    try:
                        for _attempt in range(2):  # a request the kernel aborted gets no output
                            client.execute_cell(grading, len(nb.cells) - 1)
                            tap = client.taps.get(len(nb.cells) - 1)
                            if tap is not None:
                                tap.finish()
                            reports, distrust = _one_result(client.taps, len(nb.cells) - 1,
                                                            nonce)
                            if reports is not None or distrust or grading.outputs or tap:
                                break
                    except CellTimeoutError:
                        result.message = f"grading did not finish within {grading_budget:.0f} s"
                    except DeadKernelError:
                        result.message = "the kernel died while grading"
        except Exception as exc:  # the kernel would not start, or nbclient itself failed
            result.status = NOTEBOOK_ERROR
            result.message = f"could not run the notebook: {type(exc).__name__}: {exc}"

    result.cell_errors = [
        {"cell": i + 1, "error": f"{o.get('ename', '')}: {_plain(o.get('evalue', ''))}"}
        for i, c in enumerate(nb.cells[:n_cells]) if c.cell_type == "code" and i != timed_out_in
        for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    if result.status == NOTEBOOK_ERROR:
        pass  # the kernel never ran: the message says why
    elif died_in is not None:
        result.status = NOTEBOOK_KERNEL_DIED
        result.message = f"the kernel died in cell {died_in + 1}"
    elif timed_out_in is not None:
        result.status = NOTEBOOK_TIMED_OUT
        result.message = (f"stopped at the {timeout:g} s limit in cell {timed_out_in + 1} of "
                          f"{n_cells}; " + (result.message or "graded on what it had defined"))
    elif result.cell_errors:
        result.status = NOTEBOOK_CELL_ERRORS
        first = result.cell_errors[0]
        more = len(result.cell_errors) - 1
        result.message = (f"cell {first['cell']} raised {first['error']}"
                          + (f" (and {more} more)" if more else "")
                          + ("; the cells after it still ran" if first["cell"] < n_cells else ""))

    if grader_files_digest() != on_disk:
        distrust = "the grader's own files on disk were changed while the notebook ran"
    void = distrust or (reports or {}).get("void")
    if void:
        result.status, result.message = NOTEBOOK_VOID, void
        if reports is not None and reports.get("ok"):
            plan = [(r["graded_name"], r.get("drill")) for r in reports["reports"]]
        result.graded = _not_graded(plan, registry, void, status=VOID)
    elif reports is not None and reports.get("ok"):
        result.graded = [_row(r, registry) for r in reports["reports"]]
    elif reports is not None:
        result.graded = _not_graded(plan, registry, f"grading failed: {reports.get('error')}")
    elif result.status != NOTEBOOK_UNREADABLE:
        why = result.message or "grading produced no result"
        result.graded = _not_graded(plan, registry, why)
        if result.status in NOTEBOOK_GRADABLE:
            result.status = NOTEBOOK_ERROR
    if not result.graded and result.status in NOTEBOOK_GRADABLE:
        result.message = "no graded names found: the notebook defines none and names no drill"
    result.seconds = round(time.monotonic() - t0, 2)
    return result


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    return _ANSI.sub("", str(text)).strip()


