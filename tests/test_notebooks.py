"""The notebooks: stubs generated and in sync, nothing leaked, and both learner paths work.

nbval (`pytest --nbval solutions/`, run by `make test`) re-executes each solution and compares
its outputs with the committed ones; these tests cover the stubs and the learner's path.
"""

import importlib
import pkgutil
import re

import pytest

from grader.stubs import make_stub, solution_regions
from tests import botches
from tests.nbtools import (
    NOTEBOOKS,
    errors,
    execute,
    graded_cells,
    grader_cells,
    output_text,
    read,
    solution_paths,
)
from tests.nbtools import SOLUTIONS as SOLUTIONS_DIR

SOLUTIONS = solution_paths()
IDS = [p.stem for p in SOLUTIONS]


def test_there_is_a_stub_for_every_solution_and_nothing_else():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == [p.name for p in SOLUTIONS]


@pytest.mark.parametrize("path", SOLUTIONS, ids=IDS)
def test_stub_is_what_the_generator_makes_today(path):
    import nbformat

    expected = nbformat.writes(make_stub(read(path)))
    actual = nbformat.writes(read(NOTEBOOKS / path.name))
    assert actual == expected, f"notebooks/{path.name} is stale or hand-edited: run `make stubs`"


@pytest.mark.parametrize("path", SOLUTIONS, ids=IDS)
def test_stub_leaks_no_solution_line_and_has_no_outputs(path):
    solution, stub = read(path), read(NOTEBOOKS / path.name)
    stub_text = "\n".join(c.source for c in stub.cells)
    for cell in solution.cells:
        for line in solution_regions(cell.source):
            line = line.strip()
            if len(line) > 12 and not line.startswith("#"):
                assert line not in stub_text, f"solution line leaked into the stub: {line!r}"
    for cell in stub.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("path", SOLUTIONS, ids=IDS)
def test_solution_is_committed_executed_with_its_graded_cells_marked(path):
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "solution not executed"
    assert graded_cells(nb), "no cell tagged `graded`"
    assert any("BEGIN SOLUTION" in nb.cells[i].source for i in graded_cells(nb))
    assert grader_cells(nb), "no grader cell"
    for i in grader_cells(nb):
        assert "checks pass" in output_text(nb.cells[i]) and "Most likely" not in output_text(
            nb.cells[i]), f"the committed grader cell {i} does not show every check passing"


@pytest.mark.parametrize("path", SOLUTIONS, ids=IDS)
def test_untouched_stub_runs_top_to_bottom_and_says_what_to_write(path, tmp_path):
    ran = execute(read(NOTEBOOKS / path.name), cwd=tmp_path)
    assert errors(ran) == []
    text = "\n".join(output_text(c) for c in ran.cells if c.cell_type == "code")
    assert re.search(r"Implement `\w+` first", text)
    for i in grader_cells(ran):
        assert "not implemented yet" in output_text(ran.cells[i])


def _with_graded_cells(stub, sources):
    for i, source in zip(graded_cells(stub), sources):
        stub.cells[i].source = source
    return stub


@pytest.mark.parametrize("path", SOLUTIONS, ids=IDS)
def test_learner_path_a_correct_implementation_passes_the_grader(path, tmp_path):
    solution = read(path)
    pasted = [solution.cells[i].source for i in graded_cells(solution)]
    ran = execute(_with_graded_cells(read(NOTEBOOKS / path.name), pasted), cwd=tmp_path)
    assert errors(ran) == []
    for i in grader_cells(ran):
        out = output_text(ran.cells[i])
        assert re.search(r": all \d+ checks pass", out), out


def _learner_path_botches():
    """Each botch module may name one botch, as source code, to paste into its drill's stub."""
    cases = []
    for info in pkgutil.iter_modules(botches.__path__):
        spec = getattr(importlib.import_module(f"tests.botches.{info.name}"), "LEARNER_PATH", None)
        if spec:
            path = SOLUTIONS_DIR / f"{spec['solution']}.ipynb"
            cases.append(pytest.param(path, spec, id=f"{spec['solution']}-{spec['name']}"))
    return cases


@pytest.mark.parametrize("path,spec", _learner_path_botches())
def test_learner_path_a_botched_implementation_fails_naming_the_botch(path, spec, tmp_path):
    """A botch pasted into the stub's cell, as a learner would write it, is named by the grader."""
    solution, stub = read(path), read(NOTEBOOKS / path.name)
    pasted = [solution.cells[i].source for i in graded_cells(solution)]
    # The learner's cell: the correct definitions, with the botched one written over them.
    pasted[spec.get("cell", 0)] += "\n\n" + spec["source"]
    ran = execute(_with_graded_cells(stub, pasted), cwd=tmp_path)
    outputs = {i: output_text(ran.cells[i]) for i in grader_cells(ran)}
    target = [o for o in outputs.values() if o.startswith(spec["graded_name"] + ":")]
    assert target, outputs
    assert "Most likely:" in target[0] and spec["expect"] in target[0], target[0]
