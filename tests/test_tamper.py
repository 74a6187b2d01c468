"""Tamper evidence: every way a submission could give itself marks ends as a void grade.

The in-process tests call grader.check directly; the notebook tests run grade_notebook (what
`python -m grader grade` runs per notebook) on small drill-01 notebooks, each a known attack.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell

import grader
from grader import guard
from grader.grade.kernel import grade_notebook
from grader.grade.results import MARK
from grader.status import FAIL, NOTEBOOK_OK, NOTEBOOK_VOID, PASS, VOID
from tests.notebook_fixtures import BOTCHED, CHECK, START, _notebook, reference_source

ZERO = "import torch\n\ndef nt_xent_loss(z1, z2, temperature=0.5):\n    return torch.zeros(())"


# -- in one process -------------------------------------------------------------------------


def _botched():
    space = {}
    exec(BOTCHED, space)
    return space["nt_xent_loss"]


def test_a_function_that_patches_torch_allclose_is_void_and_the_patch_is_undone():
    botched = _botched()
    honest = grader.check("nt_xent_loss", botched)
    assert honest.status == FAIL

    def patching(z1, z2, temperature=0.5):
        torch.allclose = lambda *a, **k: True
        torch.isfinite = lambda t: torch.ones_like(t, dtype=torch.bool)
        return botched(z1, z2, temperature)

    original = torch.allclose, torch.isfinite
    report = grader.check("nt_xent_loss", patching)
    assert report.status == VOID and not report.passed
    assert "torch.allclose" in report.void and "torch.isfinite" in report.void
    assert (torch.allclose, torch.isfinite) == original, "the patch outlived the check"
    # The patch must not help whatever is checked next in this process.
    assert grader.check("nt_xent_loss", botched).status == FAIL


def test_a_function_that_patches_the_grader_on_its_first_call_is_void():
    import grader.checks

    original = grader.checks._run_one

    def patching(z1, z2, temperature=0.5):
        grader.checks._run_one = lambda check, obj: original(check, lambda *a, **k: None)
        return torch.zeros(())

    report = grader.check("nt_xent_loss", patching)
    assert report.status == VOID and "grader.checks._run_one" in report.void
    assert grader.checks._run_one is original


def test_a_function_that_empties_a_checklist_is_void():
    checks = grader.REGISTRY.find("nt_xent_loss", "01_nt_xent").checks

    def emptying(z1, z2, temperature=0.5):
        checks.clear()
        return torch.zeros(())

    report = grader.check("nt_xent_loss", emptying)
    assert report.status == VOID and "the checks of `nt_xent_loss`" in report.void
    assert len(checks) == len(grader.REGISTRY["nt_xent_loss"].checks) > 10


def test_the_void_reason_survives_the_round_trip():
    report = grader.Report("nt_xent_loss", void="the code under test replaced torch.allclose")
    again = grader.Report.from_dict(report.to_dict())
    assert again.status == VOID and again.void == report.void and not again.passed


def test_fingerprints_tell_a_patched_function_from_the_real_one():
    trusted = guard.fingerprints()
    original = torch.allclose
    try:
        torch.allclose = torch.equal  # a built-in, but another one
        assert guard.differences(trusted) == ["torch.allclose"]
    finally:
        torch.allclose = original
    assert guard.differences(trusted) == []


# -- whole notebooks --------------------------------------------------------------------------

REPLACE_GRADE = f'''\
import grader.grade, grader.grade.inside
def fake(namespace, names, **kw):
    import json
    rows = [{{"graded_name": "nt_xent_loss", "results": [
        {{"name": "x", "passed": True}}]}}]
    return "\\n{MARK} " + json.dumps({{"ok": True, "reports": rows}}) + "\\n"
grader.grade.grade_namespace = fake
grader.grade.inside.grade_namespace = fake'''

PATCH_RUN_ONE = '''\
import torch
import grader.checks
from grader.report import CheckResult

def nt_xent_loss(z1, z2, temperature=0.5):
    grader.checks._run_one = lambda check, obj: CheckResult(check.title, True)
    return torch.zeros(())'''

HOOK = f'''\
def forge(result=None):
    print("{MARK} " + '{{"ok": true, "reports": []}}')
get_ipython().events.register("post_run_cell", forge)'''

CELL_PATCHES_TORCH = "import torch\ntorch.allclose = lambda *a, **k: True"

PRINTS_A_MARK = f'print("{MARK}0123 {{}}")'

PROBE = Path(grader.__file__).parent / "data" / "_tamper_probe.json"
WRITES_GRADER_FILES = f"import pathlib\npathlib.Path({str(PROBE)!r}).write_text('{{}}')"


def _attack(*cells):
    return _notebook(new_code_cell(START), *[new_code_cell(c) for c in cells])


ATTACKS = {
    "replaces_grade_namespace": _attack(ZERO, REPLACE_GRADE),
    "patches_run_one": _attack(PATCH_RUN_ONE),
    "post_run_cell_hook": _attack(ZERO, HOOK),
    "cell_patches_torch": _attack(BOTCHED, CELL_PATCHES_TORCH),
    "prints_a_result_line": _attack("REFERENCE", PRINTS_A_MARK),
    "writes_grader_files": _attack("REFERENCE", WRITES_GRADER_FILES),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attacks")
    out = {}
    try:
        for name, nb in ATTACKS.items():
            for cell in nb.cells:
                if cell.source == "REFERENCE":
                    cell.source = reference_source()
            path = folder / f"01_nt_xent_{name}.ipynb"
            nbformat.write(nb, path)
            out[name] = grade_notebook(path, timeout=60)
            PROBE.unlink(missing_ok=True)
    finally:
        PROBE.unlink(missing_ok=True)
    return out


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_ends_void_with_the_reason(graded, attack):
    result = graded[attack]
    assert result.status == NOTEBOOK_VOID, (result.status, result.message)
    assert not result.passed
    assert result.graded and all(g.status == VOID for g in result.graded)
    expected = {
        "replaces_grade_namespace": "grader.grade",
        "patches_run_one": "grader.checks._run_one",
        "post_run_cell_hook": "forged or extra result line",
        "cell_patches_torch": "torch.allclose",
        "prints_a_result_line": "forged or extra result line",
        "writes_grader_files": "the grader's own files on disk were changed",
    }[attack]
    assert expected in result.message, result.message


def test_an_honest_notebook_is_not_void(tmp_path):
    nb = _notebook(new_code_cell(START), new_code_cell(reference_source()), new_code_cell(CHECK))
    path = tmp_path / "01_nt_xent_honest.ipynb"
    nbformat.write(nb, path)
    result = grade_notebook(path, timeout=60)
    assert result.status == NOTEBOOK_OK, result.message
    assert [g.graded_name for g in result.graded] == list(grader.REGISTRY.in_drill("01_nt_xent"))
    assert all(g.status == PASS for g in result.graded)
