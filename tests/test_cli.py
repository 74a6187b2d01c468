"""`python -m grader grade` on small drill-01 notebooks, and once on the real solution.

Each notebook execution costs a few seconds (a fresh kernel importing torch), so the notebooks
are graded in as few runs as the assertions allow. Every run checks that the files it was given,
and the folder they sit in, are byte-for-byte what they were.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys

import nbformat
import pytest

import grader
from grader.__main__ import main
from tests.nbtools import ROOT, SOLUTIONS
from tests.notebook_fixtures import build

N_CHECKS = len(grader.REGISTRY["nt_xent_loss"].checks)
HANG_LIMIT = 12  # seconds; the hanging notebook's other cells need two or three


def snapshot(folder):
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir())}


def grade(*args, cwd=ROOT, timeout=600):
    return subprocess.run([sys.executable, "-m", "grader", "grade", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("learners")
    paths = build(folder)
    before = snapshot(folder)
    yield paths
    assert snapshot(folder) == before, "grading wrote to (or beside) the graded notebooks"


@pytest.fixture(scope="module")
def batch(fixtures):
    """One --json run over every kind of notebook: a JSON line each, then the summary's."""
    names = ["complete", "botched", "stub", "raises", "missing", "hangs"]
    run = grade("--json", "--timeout", HANG_LIMIT, *[fixtures[n] for n in names])
    *notebooks, last = [json.loads(line) for line in run.stdout.splitlines()]
    doc = last["summary"]
    by_kind = {name: entry for name, entry in zip(names, notebooks, strict=True)}
    return run, doc, by_kind


def rows_of(entry):
    return {g["graded_name"]: g for g in entry["graded"]}


def test_json_lines_are_one_object_per_notebook_then_a_summary(batch, fixtures):
    run, doc, by_kind = batch
    assert run.returncode == 1 and doc["exit_code"] == 1 and doc["passed"] is False
    assert doc["notebooks"] == len(by_kind) == 6 and doc["timeout"] == HANG_LIMIT
    assert {e["grader_version"] for e in by_kind.values()} == {doc["grader_version"]}
    assert [e["notebook"] for e in by_kind.values()] == [
        str(fixtures[k]) for k in ("complete", "botched", "stub", "raises", "missing", "hangs")]
    botched = rows_of(by_kind["botched"])["nt_xent_loss"]
    results = botched["report"]["results"]
    assert len(results) == N_CHECKS
    assert {"name", "passed", "message", "diagnosis", "hint", "seconds"} <= set(results[0])


def test_complete_notebook_passes(batch):
    entry = batch[2]["complete"]
    row = rows_of(entry)["nt_xent_loss"]
    assert entry["status"] == "ok" and entry["passed"] is True
    assert (row["status"], row["checks_passed"], row["checks_total"]) == ("pass", N_CHECKS,
                                                                         N_CHECKS)


def test_botched_notebook_fails_with_its_diagnosis(batch):
    row = rows_of(batch[2]["botched"])["nt_xent_loss"]
    assert row["status"] == "fail" and 0 < row["checks_passed"] < N_CHECKS
    assert "diagonal is not masked" in row["diagnosis"]
    assert row["first_failing_check"]


def test_untouched_stub_is_not_implemented(batch):
    row = rows_of(batch[2]["stub"])["nt_xent_loss"]
    assert row["status"] == "not implemented" and row["checks_passed"] == 0
    assert "not implemented" in row["diagnosis"]


def test_notebook_raising_in_its_third_cell_is_graded_on_what_it_defined(batch):
    entry = batch[2]["raises"]
    assert entry["status"] == "cell errors"
    first_error = entry["cell_errors"][0]
    assert first_error["cell"] == 3 and "RuntimeError" in first_error["error"]
    assert rows_of(entry)["nt_xent_loss"]["status"] == "pass"


def test_a_graded_name_never_defined_is_missing_and_fails(batch):
    entry = batch[2]["missing"]
    row = rows_of(entry)["nt_xent_loss"]
    assert row["status"] == "missing" and "not defined" in row["diagnosis"]
    assert entry["passed"] is False


def test_notebook_that_never_finishes_is_stopped_at_the_limit_and_still_graded(batch):
    entry = batch[2]["hangs"]
    assert entry["status"] == "timed out" and entry["passed"] is False
    assert f"{HANG_LIMIT:g} s limit in cell 4" in entry["message"]
    assert entry["seconds"] < HANG_LIMIT + 60  # stopped, not waited out
    assert rows_of(entry)["nt_xent_loss"]["status"] == "pass"  # defined before the hang


def test_table_names_the_mistake_and_the_missing_implementation(fixtures):
    run = grade(fixtures["botched"], fixtures["stub"])
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split()[:3] == ["notebook", "graded", "name"]
    botched = next(line for line in lines if line.startswith(str(fixtures["botched"])))
    stub = next(line for line in lines if line.startswith(str(fixtures["stub"])))
    assert "nt_xent_loss" in botched and "the diagonal is not masked" in botched
    assert f"0/{N_CHECKS}" in stub and "not implemented" in stub


def test_csv_has_one_row_per_notebook_and_graded_name(fixtures):
    run = grade("--csv", fixtures["stub"], fixtures["not_a_notebook"])
    assert run.returncode == 2  # an unreadable file wins over a failing one
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [(r["notebook"], r["graded_name"], r["status"]) for r in rows] == [
        (str(fixtures["stub"]), "nt_xent_loss", "not implemented"),
        (str(fixtures["stub"]), "info_nce_loss", "not implemented"),  # drill 01's stretch
        (str(fixtures["not_a_notebook"]), "", "unreadable"),
    ]
    assert rows[0]["checks_total"] == str(N_CHECKS) and rows[0]["checks_passed"] == "0"


def test_a_file_that_is_not_a_notebook_exits_2(fixtures, capsys):
    assert main(["grade", str(fixtures["not_a_notebook"])]) == 2
    assert "not a readable notebook" in capsys.readouterr().err


@pytest.mark.parametrize("args", [[], ["--json", "--csv", "x.ipynb"]])
def test_bad_arguments_exit_2(args):
    with pytest.raises(SystemExit) as stop:
        main(["grade", *args])
    assert stop.value.code == 2


def test_a_missing_file_a_bad_limit_or_an_empty_folder_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "x.ipynb")  # valid, but no drill in it
    assert main(["grade", "no/such/notebook.ipynb"]) == 2
    assert main(["grade", "--timeout", "0", "x.ipynb"]) == 2
    assert main(["grade", "empty"]) == 2


def test_list_prints_the_drills_names_and_check_counts():
    run = subprocess.run([sys.executable, "-m", "grader", "list"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0
    assert "01_nt_xent" in run.stdout
    assert any(line.split()[:2] == ["nt_xent_loss", str(N_CHECKS)]
               for line in run.stdout.splitlines())


def test_the_real_drill_01_solution_passes_and_is_not_written_to():
    path = SOLUTIONS / "01_nt_xent.ipynb"
    before = path.read_bytes()
    run = grade(path.relative_to(ROOT))
    assert run.returncode == 0, run.stdout + run.stderr
    row = next(line for line in run.stdout.splitlines() if line.startswith("solutions/"))
    assert row.split() == ["solutions/01_nt_xent.ipynb", "nt_xent_loss", f"{N_CHECKS}/{N_CHECKS}",
                           "-"]
    assert path.read_bytes() == before
