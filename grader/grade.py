"""Batch grading (`python -m grader grade`): each notebook, then its checks, run in a fresh kernel.

Each notebook is read once and executed as an in-memory copy in its own fresh kernel (nbclient),
in a scratch folder, so the file given is never written to and nothing lands beside it (the
drill clock is switched off in that kernel). Cells keep running after an error, so a notebook
that breaks halfway is graded on what it defined; the whole run has a time limit, after which
the kernel is interrupted. Then one more cell, run in the same kernel, grades the notebook's
graded names and prints the reports as one marked JSON line, which is read back here.

Which names a notebook is graded on: the ones its own cells pass to `grader.check` or
`grader.ready`, plus every graded name of its drill (from `grader.clock.start("NN_name")` or a file
named `NN_name*.ipynb`). A name it never defines is "missing", which fails. A notebook that
names no drill at all is graded on every registered name it defines.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import clock

MARK = "@@contrastive-drills-grade@@"
DEFAULT_TIMEOUT = 300  # seconds for running one notebook's cells; grading has its own budget
GRADING_MARGIN = 60  # seconds on top of the checks' own time limits (imports, a slow start)

from .report import Report  # noqa: E402
from .status import (  # noqa: E402
    MISSING,
    NOT_GRADED,
    NOTEBOOK_CELL_ERRORS,
    NOTEBOOK_ERROR,
    NOTEBOOK_GRADABLE,
    NOTEBOOK_KERNEL_DIED,
    NOTEBOOK_OK,
    NOTEBOOK_TIMED_OUT,
    NOTEBOOK_UNREADABLE,
    PASS,
)


class UsageError(Exception):
    """Bad command-line input that is not about one notebook (exit code 2)."""


@dataclass
class Graded:
    """One graded name in one notebook: a row of the table."""

    graded_name: str
    status: str
    checks_passed: int = 0
    checks_total: int = 0
    first_failing_check: str = ""
    diagnosis: str = ""
    report: dict | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASS


@dataclass
class NotebookResult:
    notebook: str
    status: str = NOTEBOOK_OK  # one of grader.status.NOTEBOOK_*
    message: str = ""
    seconds: float = 0.0
    cell_errors: list[dict] = field(default_factory=list)
    graded: list[Graded] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (self.status in NOTEBOOK_GRADABLE and bool(self.graded)
                and all(g.passed for g in self.graded))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        for g, row in zip(self.graded, d["graded"], strict=True):
            row["passed"] = g.passed
        return d


# -- which names a notebook is graded on ------------------------------------------------------

_CHECK_CALL = re.compile(r"""grader\.(?:check|ready)\(\s*["'](\w+)["']""")
_CLOCK_CALL = re.compile(r"""clock\.start\(\s*["']([\w-]+)["']""")


def expected_names(nb, path: Path, registry) -> list[str]:
    """The graded names this notebook should define, in registry order (may be empty)."""
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    wanted = {m for m in _CHECK_CALL.findall(source) if m in registry}
    drills = set(_CLOCK_CALL.findall(source))
    drills |= {cl.drill for cl in registry.values() if path.stem.startswith(cl.drill)}
    wanted |= {name for name, cl in registry.items() if cl.drill in drills}
    return [name for name in registry if name in wanted]


# -- inside the kernel ------------------------------------------------------------------------


def grade_namespace(namespace: dict, names: list[str] | None) -> str:
    """Grade the names found in a kernel's namespace; return the marked JSON line. Never raises.

    `names=None` means: every registered name the namespace defines.
    """
    try:
        from .checks import REGISTRY, run

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
    root = str(Path(__file__).resolve().parent.parent)
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


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def _parse_reports(cell):
    text = _stdout(cell)
    at = text.rfind(MARK)
    if at < 0:
        return None
    line = text[at + len(MARK):].split("\n", 1)[0]
    try:
        return json.loads(line)
    except ValueError:
        return None


def _row(report: dict, registry) -> Graded:
    name = report["graded_name"]
    if report.get("missing"):
        total = len(registry[name].checks) if name in registry else 0
        return Graded(name, MISSING, 0, total, "",
                      f"`{name}` is not defined in the notebook (did its cell run?)")
    rebuilt = Report.from_dict(report)  # what the table says is what the Report says
    first = rebuilt.first_failure
    return Graded(name, rebuilt.status, rebuilt.n_passed, len(rebuilt.results),
                  first.name if first else "", rebuilt.diagnosis, rebuilt.to_dict())


def _not_graded(names, registry, why) -> list[Graded]:
    return [Graded(n, NOT_GRADED, 0, len(registry[n].checks), "", f"not graded: {why}")
            for n in names]


def grade_notebook(path: Path, timeout: float = DEFAULT_TIMEOUT, registry=None,
                   display_name: str | None = None) -> NotebookResult:
    """Execute a copy of the notebook in a fresh kernel and grade it. Never writes to `path`."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbclient.util import run_sync

    if registry is None:
        from .checks import REGISTRY as registry
    result = NotebookResult(display_name or str(path))
    t0 = time.monotonic()
    try:
        nb = read_notebook(path)
    except ValueError as exc:
        result.status, result.message = NOTEBOOK_UNREADABLE, str(exc)
        return result
    names = expected_names(nb, path, registry)
    grading_budget = GRADING_MARGIN + sum(
        c.timeout for n in (names or registry) for c in registry[n].checks)

    timed_out_in = died_in = None
    stuck = False
    reports = None
    n_cells = len(nb.cells)  # the grading cell is appended after these
    with tempfile.TemporaryDirectory(prefix="grader-") as scratch:
        client = NotebookClient(
            nb, kernel_name="python3", allow_errors=True, interrupt_on_timeout=False,
            shutdown_kernel="immediate", record_timing=False, log=_quiet_logger(),
            resources={"metadata": {"path": scratch}},
        )
        try:
            with client.setup_kernel(env=_kernel_env(), stderr=subprocess.DEVNULL):
                deadline = time.monotonic() + timeout  # the kernel's start-up is not counted
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type != "code":
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
                    grading = nbformat.v4.new_code_cell(
                        GRADING_CELL.format(names=names or None))
                    nb.cells.append(grading)
                    client.timeout = math.ceil(grading_budget)
                    try:
                        for _attempt in range(2):  # a request the kernel aborted gets no output
                            client.execute_cell(grading, len(nb.cells) - 1)
                            reports = _parse_reports(grading)
                            if reports is not None or grading.outputs:
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

    if reports is not None and reports.get("ok"):
        result.graded = [_row(r, registry) for r in reports["reports"]]
    elif reports is not None:
        result.graded = _not_graded(names, registry, f"grading failed: {reports.get('error')}")
    elif result.status != NOTEBOOK_UNREADABLE:
        why = result.message or "grading produced no result"
        result.graded = _not_graded(names, registry, why)
        if result.status in NOTEBOOK_GRADABLE:
            result.status = NOTEBOOK_ERROR
    if not result.graded and result.status in NOTEBOOK_GRADABLE:
        result.message = "no graded names found: the notebook defines none and names no drill"
    result.seconds = round(time.monotonic() - t0, 2)
    return result


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    return _ANSI.sub("", str(text)).strip()


# -- reporting --------------------------------------------------------------------------------


def exit_code(results: list[NotebookResult]) -> int:
    if any(r.status == NOTEBOOK_UNREADABLE for r in results):
        return 2
    return 0 if all(r.passed for r in results) else 1


def to_json(results: list[NotebookResult], timeout: float) -> str:
    from . import __version__

    doc = {
        "grader_version": __version__,
        "timeout": timeout,
        "exit_code": exit_code(results),
        "passed": all(r.passed for r in results),
        "notebooks": [r.to_dict() for r in results],
    }
    return json.dumps(doc, indent=1)


CSV_COLUMNS = ["notebook", "graded_name", "status", "checks_passed", "checks_total",
               "first_failing_check", "diagnosis", "notebook_status", "notebook_message"]


def to_csv(results: list[NotebookResult]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        rows = r.graded or [Graded("", r.status if r.status == NOTEBOOK_UNREADABLE else NOT_GRADED,
                                   diagnosis=r.message)]
        for g in rows:
            writer.writerow([r.notebook, g.graded_name, g.status, g.checks_passed,
                             g.checks_total, g.first_failing_check, g.diagnosis, r.status,
                             r.message])
    return buf.getvalue()


def to_table(results: list[NotebookResult]) -> str:
    rows = [("notebook", "graded name", "checks", "first failing check's diagnosis")]
    for r in results:
        if not r.graded:
            rows.append((r.notebook, "-", "-", r.message))
            continue
        for g in r.graded:
            diagnosis = g.diagnosis if not g.passed else "-"
            if g.passed and not r.passed:
                diagnosis = f"- (but the notebook {r.status})"
            rows.append((r.notebook, g.graded_name, f"{g.checks_passed}/{g.checks_total}",
                         diagnosis))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]),
                                row[2].rjust(widths[2]), row[3]]).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(row[3]))
    notes = [f"  {r.notebook}: {r.status}: {r.message}" for r in results
             if r.message and any(g.status != NOT_GRADED for g in r.graded)]
    if notes:
        lines += ["", "notes:", *notes]
    n_pass = sum(r.passed for r in results)
    lines += ["", f"{n_pass} of {len(results)} notebook(s) pass every check."]
    return "\n".join(lines) + "\n"


# -- the command ------------------------------------------------------------------------------


def expand(paths: list[str]) -> list[tuple[Path, str]]:
    """Files as given, folders as their *.ipynb; raises UsageError on a missing path."""
    found = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            inside = sorted(path.glob("*.ipynb"))
            if not inside:
                raise UsageError(f"{p}: a folder with no notebooks in it")
            found += [(q, str(q)) for q in inside]
        elif path.exists():
            found.append((path, p))
        else:
            raise UsageError(f"{p}: no such file")
    return found


def main(paths: list[str], *, fmt: str = "table", timeout: float = DEFAULT_TIMEOUT) -> int:
    try:
        todo = expand(paths)
    except UsageError as exc:
        print(f"grade: {exc}", file=sys.stderr)
        return 2
    if timeout <= 0:
        print("grade: --timeout must be positive", file=sys.stderr)
        return 2
    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as exc:
        print(f"grade: {exc.name} is missing; install the command line's extra with "
              "`pip install 'contrastive-drills[cli]'` (or `make setup`)", file=sys.stderr)
        return 2
    from .checks import REGISTRY

    results = []
    for path, shown in todo:
        if sys.stderr.isatty():
            print(f"grading {shown} ...", file=sys.stderr, flush=True)
        results.append(grade_notebook(path, timeout, REGISTRY, display_name=shown))
    if fmt == "json":
        sys.stdout.write(to_json(results, timeout) + "\n")
    elif fmt == "csv":
        sys.stdout.write(to_csv(results))
    else:
        sys.stdout.write(to_table(results))
    for r in results:
        if r.status == NOTEBOOK_UNREADABLE:
            print(f"grade: {r.notebook}: {r.message}", file=sys.stderr)
    return exit_code(results)
