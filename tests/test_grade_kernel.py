"""How `python -m grader grade` runs one notebook: the drill from its content, a kernel pinned
to the grader's own Python, and bounded memory whatever the notebook prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader import REGISTRY
from grader.grade.choose import grading_plan, which_drills
from grader.grade.outputs import Tap
from grader.grade.results import MARK
from tests.nbtools import ROOT, SOLUTIONS, graded_cells, read
from tests.notebook_fixtures import START, _notebook, reference_source

# -- the drill from the content ---------------------------------------------------------------


def _cells(*sources):
    return new_notebook(cells=[new_code_cell(s) for s in sources])


def _augment_source() -> str:
    nb = read(SOLUTIONS / "02_simclr.ipynb")
    return next(nb.cells[i].source for i in graded_cells(nb) if "def augment" in nb.cells[i].source)


@pytest.mark.parametrize("sources, stem, drills", [
    (["grader.clock.start('02_simclr')"], "alice", ["02_simclr"]),  # the clock says it
    (["x = 1"], "02_simclr_bob", ["02_simclr"]),  # the file name says it
    (["def augment(x, generator=None):\n    pass", 'grader.check("augment", augment)'],
     "alice", ["02_simclr"]),  # a name only drill 02 grades
    (["def nt_xent_loss(z1, z2, temperature=0.5): ...", "def augment(x): ...",
      "class SimCLRModel: ...", "def train_simclr(): ..."], "carol", ["02_simclr"]),
    (["def nt_xent_loss(z1, z2, temperature=0.5): ..."], "dave", ["01_nt_xent"]),
    (['grader.check("dino_loss", f, drill="04_dino")'], "erin", ["04_dino"]),
    (["print('hello')"], "frank", []),
])
def test_the_drill_is_recognised_from_clock_file_name_or_the_names_used(sources, stem, drills):
    assert which_drills(_cells(*sources), Path(f"{stem}.ipynb"), REGISTRY) == drills


def test_a_notebook_of_a_known_drill_is_graded_on_every_name_of_that_drill():
    nb = _cells("def augment(x, generator=None): ...", 'grader.check("augment", augment)')
    plan = grading_plan(nb, Path("alice.ipynb"), REGISTRY)
    assert plan == [(n, "02_simclr") for n in REGISTRY.in_drill("02_simclr")]
    assert len(plan) == 4


def grade_cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "grader", "grade", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_a_renamed_partial_drill_02_notebook_is_not_passed_on_augment_alone(tmp_path):
    nb = _notebook(new_code_cell("import grader"), new_code_cell(_augment_source()),
                   new_code_cell('grader.check("augment", augment)'))
    path = tmp_path / "alice.ipynb"
    nbformat.write(nb, path)
    run = grade_cli("--csv", "--skip-demos", path)
    assert run.returncode == 1, run.stdout + run.stderr
    rows = {r.split(",")[1]: r for r in run.stdout.splitlines()[1:]}
    assert set(rows) == set(REGISTRY.in_drill("02_simclr")), run.stdout
    assert ",pass," in rows["augment"]
    assert sum(",missing," in r for r in rows.values()) == 3


# -- the kernel is the grader's own Python ----------------------------------------------------


def test_a_decoy_python3_kernel_spec_on_jupyter_path_is_not_used(tmp_path):
    decoy = tmp_path / "jupyter" / "kernels" / "python3"
    decoy.mkdir(parents=True)
    (decoy / "kernel.json").write_text(json.dumps({
        "argv": ["/bin/false", "{connection_file}"], "display_name": "Decoy",
        "language": "python"}))
    nb = _notebook(new_code_cell(START), new_code_cell(reference_source()),
                   new_code_cell("import sys\nprint(sys.executable)"))
    path = tmp_path / "01_nt_xent_pinned.ipynb"
    nbformat.write(nb, path)
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "jupyter")}
    listed = subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
                            env=env, capture_output=True, text=True)
    assert "Decoy" in listed.stdout, "the decoy is not where Jupyter looks: the test proves nothing"
    run = grade_cli("--json", path, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    first = json.loads(run.stdout.splitlines()[0])
    assert first["status"] == "ok" and first["passed"], first


# -- bounded memory -------------------------------------------------------------------------


def test_a_tap_keeps_result_lines_however_the_text_is_split():
    tap = Tap()
    line = MARK + "abc {\"ok\": true}"
    text = "noise\n" * 3 + line + "\nmore noise\n"
    for i in range(0, len(text), 7):
        tap.feed(text[i:i + 7])
    assert tap.lines == [line] and tap.marks == 1
    tap.feed("x" * 10**6 + MARK[:5])
    tap.feed(MARK[5:] + " forged")
    tap.finish()
    assert tap.marks == 2 and tap.lines[-1] == MARK + " forged"
    assert sys.getsizeof(tap._carry) < 1000


PEAK = """\
import resource, sys
from grader.__main__ import main
rc = main(["grade", "--timeout", sys.argv[2], sys.argv[1]])
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(rc)
"""


def _peak_kb(path, seconds) -> int:
    run = subprocess.run([sys.executable, "-c", PEAK, str(path), str(seconds)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    line = next(x for x in run.stderr.splitlines() if x.startswith("PEAK_KB"))
    return int(line.split()[1])


def test_a_notebook_that_prints_without_end_does_not_grow_the_grader(tmp_path):
    quiet = _notebook(new_code_cell(START), new_code_cell(reference_source()),
                      new_code_cell("import time\ntime.sleep(25)"))
    loud = _notebook(new_code_cell(START), new_code_cell(reference_source()),
                     new_code_cell("while True:\n    print('x' * 10000)"))
    for name, nb in (("quiet", quiet), ("loud", loud)):
        nbformat.write(nb, tmp_path / f"01_nt_xent_{name}.ipynb")
    base = _peak_kb(tmp_path / "01_nt_xent_quiet.ipynb", 20)
    loud_kb = _peak_kb(tmp_path / "01_nt_xent_loud.ipynb", 20)
    # Unbounded, 20 s of this loop kept about 600 MB in the grade process (30 MB/s); kept
    # bounded, the loud notebook's peak is within a few MB of the quiet one's.
    assert loud_kb - base < 50_000, (base, loud_kb)


def test_the_kernel_boot_script_knows_the_result_marker():
    import runpy

    boot = runpy.run_path(str(ROOT / "grader" / "grade" / "kernel_boot.py"), run_name="boot")
    assert boot["MARK"] == MARK
