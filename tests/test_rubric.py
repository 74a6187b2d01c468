"""The drill clock's summary shows the notebook's own rubric, word for word."""

from __future__ import annotations

import ast
import re

import pytest

from tests.nbtools import read, solution_paths


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("$", ""))


def _table_rows(nb) -> dict[str, list[str]]:
    """score -> the words of its row, from the markdown rubric (| 3 | what it looks like |)."""
    cell = next(c.source for c in nb.cells
                if c.cell_type == "markdown" and "Self-grading rubric" in c.source)
    return {m[1]: _words(m[2]) for m in re.finditer(r"^\|\s*(\d)\s*\|(.*)\|\s*$", cell, re.M)}


def _summary_rows(nb) -> dict[str, list[str]]:
    """score -> the words of its line in the rubric text the summary cell hands the clock."""
    code = next(c.source for c in nb.cells if c.cell_type == "code" and "clock.summary" in c.source)
    texts = [n.value for n in ast.walk(ast.parse(code))
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and "\n" in n.value]
    text = max(texts, key=len, default="")
    return {m[1]: _words(m[2]) for m in re.finditer(r"^(\d)[:\s]\s*(.*)$", text, re.M)}


@pytest.mark.parametrize("path", solution_paths(), ids=lambda p: p.stem)
def test_the_summary_rubric_is_the_notebooks_rubric(path):
    nb = read(path)
    table = _table_rows(nb)
    assert sorted(table) == ["0", "1", "2", "3"], table
    assert _summary_rows(nb) == table
