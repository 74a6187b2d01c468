"""One-click Colab: the badge and set-up cells come from one template, and the set-up cell works.

The last test is the real thing: a fresh virtual environment with only what Colab preinstalls
that the grader needs (torch, numpy), the set-up cell's code run with the install source pointed
at this checkout, then `import grader` and a graded function. It skips only when pip cannot
reach a package index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grader import _project
from grader.__main__ import main
from grader.stubs import BADGES_BEGIN, BADGES_END, StubError, apply_template, sync
from tests.nbtools import ROOT, read, solution_paths
from tests.notebook_fixtures import reference_source

NAME = "07_example.ipynb"


def test_the_repository_url_is_written_in_the_grader_only_once():
    owner_and_name = _project.github_path()
    assert _project.REPOSITORY == f"https://github.com/{owner_and_name}"
    holders = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "grader").rglob("*.py"))
               if owner_and_name in p.read_text()]
    assert holders == ["grader/_project.py"]


def test_badge_opens_the_learners_copy_in_colab_and_setup_installs_only_the_package():
    badge = _project.badge_source(NAME)
    assert badge == (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{_project.github_path()}/blob/"
        f"{_project.BRANCH}/notebooks/{NAME})")
    setup = _project.setup_source()
    compile(setup, "setup cell", "exec")
    assert f"git+{_project.REPOSITORY}" in setup and _project.SOURCE_ENV in setup
    assert '"--no-deps"' in setup  # nothing but the package itself, whatever Colab has


def old_solution(badge="[![Open In Colab](old.svg)](https://example.org/old)",
                 setup="import grader  # an older set-up cell"):
    nb = new_notebook(cells=[
        new_markdown_cell("# Drill 07: an example\n\nWith a paper, and non-ASCII: τ, ≥, é."),
        new_markdown_cell(badge, metadata={"tags": ["colab-badge"]}),
        new_code_cell(setup, metadata={"tags": ["setup"]}),
        new_code_cell("def f(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION",
                      metadata={"tags": ["graded"]}, execution_count=1),
        new_code_cell("f(21)", execution_count=2, outputs=[
            new_output("execute_result", data={"text/plain": "42"}, execution_count=2)]),
        new_markdown_cell("The solution: [old](https://example.org/old)",
                          metadata={"tags": ["solution-link"]}),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def folders(tmp_path, nb):
    solutions, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    path = solutions / NAME
    path.write_text(nbformat.writes(nb) + "\n")
    return path, solutions, notebooks


def test_stubs_check_reports_a_solution_whose_badge_or_setup_differs(tmp_path):
    path, solutions, notebooks = folders(tmp_path, old_solution())
    before = path.read_bytes()
    drifted = sync(solutions, notebooks, check=True)
    assert f"{NAME} (the solution's colab-badge, setup and solution-link cells)" in drifted
    assert path.read_bytes() == before and not notebooks.exists()
    assert main(["stubs", "--check", "--solutions", str(solutions),
                 "--notebooks", str(notebooks)]) == 1


def test_stubs_rewrites_only_the_templated_sources_of_a_solution(tmp_path):
    original = old_solution()
    path, solutions, notebooks = folders(tmp_path, original)
    sync(solutions, notebooks)

    expected = nbformat.reads(nbformat.writes(original), as_version=4)
    expected.cells[1].source = _project.badge_source(NAME)
    expected.cells[2].source = _project.setup_source()
    expected.cells[5].source = _project.solution_link_source(NAME)
    assert path.read_text() == nbformat.writes(expected) + "\n"  # every other byte as it was
    stub = read(notebooks / NAME)
    assert stub.cells[1].source == _project.badge_source(NAME)
    assert stub.cells[2].source == _project.setup_source()
    assert "raise NotImplementedError" in stub.cells[3].source
    assert sync(solutions, notebooks, check=True) == []


def test_a_solution_without_the_cells_gets_them_after_its_title(tmp_path):
    nb = old_solution()
    del nb.cells[1:3]
    changed = apply_template(nb, NAME)
    assert changed == ["colab-badge", "setup", "solution-link"]  # the link's source was old
    assert [c.metadata.get("tags") for c in nb.cells[:3]] == [None, ["colab-badge"], ["setup"]]
    assert nb.cells[1].cell_type == "markdown" and nb.cells[2].cell_type == "code"
    nbformat.validate(nb)


def test_two_setup_cells_are_refused(tmp_path):
    nb = old_solution()
    nb.cells.append(new_code_cell("pass", metadata={"tags": ["setup"]}))
    with pytest.raises(StubError, match="2 cells are tagged `setup`"):
        apply_template(nb, NAME)


def test_a_solution_not_laid_out_by_nbformat_is_left_alone(tmp_path):
    path, solutions, notebooks = folders(tmp_path, old_solution())
    squashed = path.read_text().replace("\n ", "\n  ")  # valid JSON, other indentation
    path.write_text(squashed)
    with pytest.raises(StubError, match="not laid out as nbformat writes it"):
        sync(solutions, notebooks)
    assert path.read_text() == squashed


def test_stubs_regenerates_the_readme_badge_table_between_its_markers(tmp_path):
    path, solutions, notebooks = folders(tmp_path, old_solution())
    readme = tmp_path / "README.md"
    before = f"# Title\n\nIntro.\n\n{BADGES_BEGIN}\n| stale |\n{BADGES_END}\n\nThe rest.\n"
    readme.write_text(before)
    assert "README.md (the Colab badge table)" in sync(solutions, notebooks, check=True)
    assert readme.read_text() == before
    sync(solutions, notebooks)
    after = readme.read_text()
    assert after.startswith(f"# Title\n\nIntro.\n\n{BADGES_BEGIN}\n| drill |")
    assert after.endswith(f"{BADGES_END}\n\nThe rest.\n") and "stale" not in after
    assert f"| [Drill 07: an example](notebooks/{NAME}) | {_project.badge_source(NAME)} |" in after
    assert sync(solutions, notebooks, check=True) == []


def test_a_readme_without_the_markers_is_left_alone(tmp_path):
    path, solutions, notebooks = folders(tmp_path, old_solution())
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nNo badges here.\n")
    sync(solutions, notebooks)
    assert readme.read_text() == "# Title\n\nNo badges here.\n"


@pytest.mark.parametrize("path", solution_paths(), ids=lambda p: p.name)
def test_every_solution_carries_the_templated_badge_and_setup_cells(path):
    nb = read(path)
    assert apply_template(nb, path.name, where=path.name) == [], (
        f"{path.name}: run `python -m grader stubs` to refresh its templated cells")


# -- the set-up cell in a fresh environment ----------------------------------------------------


def _pip(python, *args, timeout=600):
    return subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout)


def _package_copy(dest: Path) -> Path:
    """What a pip install of the repository sees, copied so that building it writes nothing here."""
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "grader", dest / "grader",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def test_setup_cell_installs_the_grader_into_a_fresh_environment(tmp_path):
    probe = _pip(sys.executable, "download", "--no-deps", "--dest", str(tmp_path / "probe"),
                 "-c", str(ROOT / "constraints.txt"), "numpy", timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"pip cannot reach a package index: {probe.stderr.strip()[-300:]}")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # What Colab preinstalls and the grader needs: the pinned CPU torch and numpy.
    base = _pip(python, "install", "-q", "-c", str(ROOT / "constraints.txt"), "torch", "numpy")
    assert base.returncode == 0, base.stderr
    absent = subprocess.run([str(python), "-c", "import grader"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300)
    assert absent.returncode != 0 and "No module named 'grader'" in absent.stderr
    before = set(_pip(python, "freeze").stdout.splitlines())

    (tmp_path / "checkout").mkdir()
    source = _package_copy(tmp_path / "checkout")
    script = "\n\n".join([
        _project.setup_source(),
        _project.setup_source(),  # a second run of the cell does nothing
        reference_source(),
        textwrap.dedent("""
            report = grader.check("nt_xent_loss", nt_xent_loss)
            print(report.headline())
            print("FROM", grader.__file__)
            assert report.passed, report
        """),
    ])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env[_project.SOURCE_ENV] = str(source)
    run = subprocess.run([str(python), "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "nt_xent_loss: all" in run.stdout
    assert str(venv) in run.stdout.split("FROM", 1)[1]  # the installed copy, not this checkout
    added = set(_pip(python, "freeze").stdout.splitlines()) - before
    names = [line.split(" @ ")[0].split("==")[0].lower().replace("_", "-") for line in added]
    assert names == [_project.PACKAGE]
