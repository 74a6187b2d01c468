"""`python -m grader grade` for a class: rows streamed as graded, --jobs, the progress bar,
--skip-demos and the `demo` tags it relies on, and the limits it refuses.

The runs that need a kernel use the small drill-01 notebooks of tests/notebook_fixtures.py; the
progress bar is tested on a file that is not a notebook, which is graded without a kernel.
"""

from __future__ import annotations

import ast
import builtins
import csv
import fcntl
import io
import json
import os
import pty
import queue
import struct
import subprocess
import sys
import termios
import threading
import time

import nbformat
import pytest

import grader
from grader.__main__ import main
from grader.grade import command
from grader.grade.render import to_table
from grader.grade.results import Graded, NotebookResult
from grader.status import FAIL, NOTEBOOK_CELL_ERRORS, NOTEBOOK_OK, NOTEBOOK_TIMED_OUT, PASS
from tests.nbtools import NOTEBOOKS, ROOT, SOLUTIONS, read, solution_paths
from tests.notebook_fixtures import build

N_CHECKS = len(grader.REGISTRY["nt_xent_loss"].checks)
GRADE = [sys.executable, "-m", "grader", "grade"]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return build(tmp_path_factory.mktemp("class"))


# -- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["nan", "inf", "-inf"])
def test_a_limit_that_is_not_a_finite_number_is_a_usage_error(limit, fixtures, capsys):
    assert main(["grade", f"--timeout={limit}", str(fixtures["complete"])]) == 2
    assert "--timeout must be a positive, finite number" in capsys.readouterr().err


@pytest.mark.parametrize("jobs", ["0", "-1", "two", "1.5"])
def test_jobs_must_be_a_positive_whole_number(jobs, fixtures, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["grade", "--jobs", jobs, str(fixtures["complete"])])
    assert stop.value.code == 2 and "--jobs" in capsys.readouterr().err
    assert command.main([str(fixtures["complete"])], jobs=0) == 2  # called from Python too


# -- the table's wording ----------------------------------------------------------------------


def _result(status, *rows):
    return NotebookResult("a.ipynb", status, "why", graded=[
        Graded(name, state, 3 if state == PASS else 1, 3, diagnosis="" if state == PASS else
               "the diagonal is not masked") for name, state in rows])


def _diagnosis(table, name):
    line = next(line for line in table.splitlines() if f" {name} " in line)
    return line.split(" 3/3 " if "3/3" in line else " 1/3 ", 1)[1].strip()


def test_a_passing_row_says_dash_when_only_another_name_fails():
    table = to_table([_result(NOTEBOOK_OK, ("good", PASS), ("bad", FAIL))])
    assert _diagnosis(table, "good") == "-"
    assert _diagnosis(table, "bad") == "the diagonal is not masked"
    assert "but the notebook" not in table


@pytest.mark.parametrize("status, says", [
    (NOTEBOOK_TIMED_OUT, "- (the notebook timed out)"),
    (NOTEBOOK_CELL_ERRORS, "- (the notebook had cell errors)"),
    ("void", "- (the notebook: void)"),  # a status this table has never heard of, named as is
])
def test_a_passing_row_names_what_went_wrong_with_its_notebook(status, says):
    table = to_table([_result(status, ("good", PASS), ("bad", FAIL))])
    assert _diagnosis(table, "good") == says


# -- streaming: each notebook's rows as soon as it is graded ----------------------------------


def _lines(stream, into):
    for line in iter(stream.readline, ""):
        into.put(line)
    into.put(None)


@pytest.mark.parametrize("fmt", ["table", "--csv", "--json"])
def test_a_batch_killed_midway_keeps_the_rows_it_finished(fmt, fixtures):
    first, second = fixtures["complete"], fixtures["hangs"]  # the second never finishes
    args = [a for a in (fmt if fmt != "table" else None,) if a]
    run = subprocess.Popen([*GRADE, *args, "--timeout", "120", first, second], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(run.stdout, lines), daemon=True).start()
    seen, deadline = [], time.monotonic() + 120
    try:
        while not any(str(first) in line for line in seen):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "the command ended before writing the first notebook's row"
            seen.append(line)
    finally:
        run.kill()  # SIGKILL: no chance to write anything more (its kernel follows it out)
        run.wait(timeout=30)
    while (line := lines.get(timeout=30)) is not None:
        seen.append(line)
    text = "".join(seen)
    assert str(second) not in text and "pass every check" not in text
    if fmt == "--json":
        entry = json.loads(seen[0])
        assert entry["notebook"] == str(first) and entry["passed"] is True
        assert entry["grader_version"] == grader.__version__
    elif fmt == "--csv":
        rows = list(csv.DictReader(io.StringIO(text)))  # one per graded name of drill 01
        assert [(r["notebook"], r["status"]) for r in rows] == [(str(first), "pass")] * len(rows)
        assert [r["graded_name"] for r in rows] == list(grader.REGISTRY.in_drill("01_nt_xent"))
    else:
        row = next(line for line in seen if line.startswith(str(first)))
        assert row.split()[1:] == ["nt_xent_loss", f"{N_CHECKS}/{N_CHECKS}", "-"]


def test_jobs_grade_notebooks_at_once_and_keep_the_exit_code(fixtures):
    names = ["complete", "botched", "stub"]
    run = subprocess.run([*GRADE, "--jobs", "2", "--json", *[fixtures[n] for n in names]],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    *entries, last = [json.loads(line) for line in run.stdout.splitlines()]
    assert run.returncode == 1 and last["summary"]["exit_code"] == 1
    assert last["summary"]["notebooks"] == 3 and last["summary"]["passed"] is False
    by_path = {e["notebook"]: e for e in entries}  # in the order they finished
    assert sorted(by_path) == sorted(str(fixtures[n]) for n in names)
    statuses = {n: by_path[str(fixtures[n])]["graded"][0]["status"] for n in names}
    assert statuses == {"complete": "pass", "botched": "fail", "stub": "not implemented"}
    assert "notebook/s" not in run.stderr  # stderr is not a terminal: no bar by default


# -- the progress bar -------------------------------------------------------------------------


def _grade_with_stderr(flags, path, on_terminal):
    """Run the command with stderr a pseudo-terminal or a pipe; return (rc, stdout, stderr)."""
    if not on_terminal:
        run = subprocess.run([*GRADE, *flags, "--csv", path], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        return run.returncode, run.stdout, run.stderr
    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, and a bar 0 columns wide shows nothing.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    run = subprocess.Popen([*GRADE, *flags, "--csv", path], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=follower, text=True)
    os.close(follower)
    err = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the other end closed: the command has ended
            break
        if not chunk:
            break
        err += chunk
    os.close(leader)
    out = run.stdout.read()
    return run.wait(timeout=300), out, err.decode(errors="replace")


@pytest.mark.parametrize("flags, on_terminal, shown", [
    ([], True, True), (["--no-progress"], True, False),
    (["--progress"], False, True), ([], False, False),
])
def test_the_progress_bar_is_on_stderr_only_when_wanted(flags, on_terminal, shown, fixtures):
    path = fixtures["not_a_notebook"]  # graded at once, no kernel: this tests only the bar
    rc, out, err = _grade_with_stderr(flags, path, on_terminal)
    assert rc == 2
    assert list(csv.reader(io.StringIO(out)))[1][:3] == [str(path), "", "unreadable"]
    assert "\r" not in out and "notebook/s" not in out  # the bar never mixes into stdout
    assert ("1/1" in err and "failing=1" in err) == shown, err
    assert "not a readable notebook" in err  # the message is there with or without the bar


# -- --skip-demos and the demo tags -----------------------------------------------------------


def _bindings(source: str, *, top_only: bool) -> set[str]:
    """Names a cell binds: in its own namespace (top_only), or anywhere (parameters, locals)."""
    out: set[str] = set()

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
            if top_only:  # what a def binds inside is its own business
                return
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.alias):
            out.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.Lambda) and top_only:
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return out


def _reads(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _is_demo(cell) -> bool:
    return "demo" in cell.metadata.get("tags", [])


@pytest.mark.parametrize("path", solution_paths(), ids=lambda p: p.stem)
def test_demo_cells_are_tagged_and_nothing_graded_depends_on_them(path):
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    demos = [c for c in code if _is_demo(c)]
    assert demos, f"{path.name}: no cell is tagged `demo`"
    for c in demos:
        assert not {"graded", "setup"} & set(c.metadata.get("tags", [])), c.source[:80]
    graded = set(grader.REGISTRY.in_drill(path.stem))
    assert graded, path.stem
    for name in graded:
        # Defined by a non-demo cell first; a demo may rebind it for a while (02's ablation).
        first = next(c for c in code if name in _bindings(c.source, top_only=True))
        assert not _is_demo(first), f"{path.name}: `{name}` is defined in a demo cell"
        assert not any(f"def {name}(" in c.source or f"class {name}(" in c.source
                       for c in demos), f"{path.name}: a demo cell defines `{name}`"
    # With the demos skipped, every other cell still finds what it reads.
    from_demos = set().union(*(_bindings(c.source, top_only=False) for c in demos))
    known = set(dir(builtins))
    for c in code:
        if _is_demo(c):
            continue
        missing = (_reads(c.source) - _bindings(c.source, top_only=False) - known) & from_demos
        assert not missing, f"{path.name}: a cell that is no demo reads {missing}: {c.source[:80]}"
        known |= _bindings(c.source, top_only=False)


def test_the_stubs_carry_the_demo_tags():
    for path in solution_paths():
        tags = [c.metadata.get("tags", []) for c in read(NOTEBOOKS / path.name).cells]
        assert any("demo" in t for t in tags), path.name
        assert tags == [c.metadata.get("tags", []) for c in read(path).cells]


def test_skip_demos_grades_every_name_of_the_real_simclr_solution(tmp_path):
    path = SOLUTIONS / "02_simclr.ipynb"
    before = path.read_bytes()
    run = subprocess.run([*GRADE, "--skip-demos", "--json", path.relative_to(ROOT)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    entry, summary = (json.loads(line) for line in run.stdout.splitlines())
    assert entry["status"] == "ok" and not entry["cell_errors"], entry["message"]
    assert {g["graded_name"]: g["status"] for g in entry["graded"]} == {
        name: "pass" for name in grader.REGISTRY.in_drill("02_simclr")}
    assert summary["summary"]["exit_code"] == 0
    assert path.read_bytes() == before


def test_skip_demos_is_passed_to_each_notebook(monkeypatch, tmp_path, capsys):
    seen = []
    monkeypatch.setattr(command, "grade_one", lambda path, timeout, shown, skip_demos: (
        seen.append(skip_demos) or NotebookResult(shown, graded=[Graded("x", PASS, 1, 1)])))
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "x.ipynb")
    assert main(["grade", "--skip-demos", "--no-progress", str(tmp_path / "x.ipynb")]) == 0
    assert main(["grade", "--no-progress", str(tmp_path / "x.ipynb")]) == 0
    assert seen == [True, False]
