"""Solutions -> stubs: the learner's notebooks are generated from solutions/, never edited by hand.

In a code cell, the lines from `# BEGIN SOLUTION` to `# END SOLUTION` become one
`raise NotImplementedError(...)` naming the function to write, at the same indentation. A region
whose BEGIN line reads `# BEGIN SOLUTION: <placeholder>` becomes that placeholder line instead
(for a value the learner fills in, e.g. `tau = ...  # YOUR CODE HERE`). In a markdown cell the
region becomes "*Your answer here.*". Outputs, execution counts and run metadata are dropped.

The cells tagged `colab-badge` (markdown) and `setup` (code) are not written by hand: their sources
come from the templates in grader/_project.py, where the repository URL lives. `sync` puts them
right in the solution first (rewriting those two sources only, every other byte kept), then
derives the stub from it; with check=True it only reports what is out of date.
"""

from __future__ import annotations

import re
from pathlib import Path

from .method_map import written_drills

BEGIN = re.compile(r"^(\s*)(?:#|<!--)\s*BEGIN SOLUTION(?::\s*(.*?))?\s*(?:-->)?\s*$")
END = re.compile(r"^\s*(?:#|<!--)\s*END SOLUTION\s*(?:-->)?\s*$")
DEF = re.compile(r"^\s*(?:def|class)\s+(\w+)")

MARKDOWN_ANSWER = "*Your answer here.*"


class StubError(ValueError):
    """A solution notebook whose regions are malformed (unclosed, nested, stray END)."""


def _enclosing_name(lines: list[str], index: int, indent: str) -> str | None:
    """The def or class that the region at `index` sits in, if any."""
    for line in reversed(lines[:index]):
        m = DEF.match(line)
        if m and len(line) - len(line.lstrip()) < len(indent):
            return m.group(1)
    return None


def strip_regions(source: str, *, markdown: bool = False, where: str = "") -> str:
    lines = source.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if END.match(line):
            raise StubError(f"{where}: END SOLUTION without BEGIN")
        m = BEGIN.match(line)
        if not m:
            out.append(line)
            i += 1
            continue
        indent, placeholder = m.group(1), m.group(2)
        j = i + 1
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise StubError(f"{where}: nested BEGIN SOLUTION")
            j += 1
        if j == len(lines):
            raise StubError(f"{where}: BEGIN SOLUTION is never closed")
        if markdown:
            out.append(MARKDOWN_ANSWER)
        elif placeholder:
            out.append(indent + placeholder)
        else:
            name = _enclosing_name(lines, i, indent)
            what = f"implement `{name}`" if name else "write this part"
            out.append(f'{indent}raise NotImplementedError("{what}")')
        i = j + 1
    return "\n".join(out)


def make_stub(nb):
    """Return a stub copy of a solution notebook (nbformat NotebookNode)."""
    import copy

    stub = copy.deepcopy(nb)
    for index, cell in enumerate(stub.cells):
        where = f"cell {index}"
        if cell.cell_type == "code":
            cell.source = strip_regions(cell.source, where=where)
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "markdown":
            cell.source = strip_regions(cell.source, markdown=True, where=where)
    stub.metadata.pop("widgets", None)
    return stub


def apply_template(nb, notebook: str, *, where: str = "", written: set[str] | None = None
                   ) -> list[str]:
    """Give the badge, set-up and solution-link cells of `nb` their template sources, and its
    method-map block (grader/method_map.py) its table, in place.

    `notebook` is the file name (the badge links to it). A missing cell is inserted where the
    drill format puts it: after the first cell (title and paper), badge first; the solution link
    last. `written`: the drill numbers that exist (the method map marks the others planned).
    Returns the tags whose cells changed.
    """
    from nbformat.v4 import new_code_cell, new_markdown_cell

    from ._project import BADGE_TAG, SETUP_TAG, SOLUTION_TAG, template_sources
    from .method_map import with_method_map

    wanted = template_sources(notebook)
    kinds = {BADGE_TAG: ("markdown", new_markdown_cell), SETUP_TAG: ("code", new_code_cell),
             SOLUTION_TAG: ("markdown", new_markdown_cell)}
    changed = []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and with_method_map(cell.source, written) != cell.source:
            cell.source = with_method_map(cell.source, written)
            changed.append("method map")
    for tag in (BADGE_TAG, SETUP_TAG, SOLUTION_TAG):
        kind, new_cell = kinds[tag]
        found = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
        if len(found) > 1:
            raise StubError(f"{where}: {len(found)} cells are tagged `{tag}`; keep one")
        if found and found[0].cell_type != kind:
            raise StubError(f"{where}: the cell tagged `{tag}` must be a {kind} cell")
        if found:
            if found[0].source != wanted[tag]:
                found[0].source = wanted[tag]
                changed.append(tag)
            continue
        cell = new_cell(wanted[tag], metadata={"tags": [tag]})
        if nb.get("nbformat_minor", 0) < 5:
            cell.pop("id", None)  # cell ids exist from format 4.5 on
        at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
        if tag == SOLUTION_TAG:
            at = len(nb.cells)  # last, after the clock's summary
        if tag == SETUP_TAG:
            badges = [i for i, c in enumerate(nb.cells) if BADGE_TAG in c.metadata.get("tags", [])]
            at = badges[0] + 1 if badges else at
        nb.cells.insert(at, cell)
        changed.append(tag)
    return changed


def solution_regions(source: str) -> list[str]:
    """The lines inside solution regions (used by tests to prove the stubs leak nothing)."""
    found, inside = [], False
    for line in source.split("\n"):
        if BEGIN.match(line):
            inside = True
        elif END.match(line):
            inside = False
        elif inside:
            found.append(line)
    return found


def _rewrite_solution(path: Path, text: str, nb) -> None:
    """Write the templated solution back, refusing if that would touch more than its templates."""
    import nbformat

    ending = "\n" if text.endswith("\n") else ""
    if nbformat.writes(nbformat.reads(text, as_version=4)) + ending != text:
        raise StubError(
            f"{path}: the file is not laid out as nbformat writes it, so fixing its badge and "
            "set-up cells would rewrite other bytes too; save it once with nbformat (or Jupyter) "
            "and run this again"
        )
    path.write_text(nbformat.writes(nb) + ending)


def sync(solutions: Path, notebooks: Path, *, check: bool = False) -> list[str]:
    """Write (or, with check=True, compare) one stub per solution. Returns the drifted names.

    A solution whose badge or set-up cell differs from the template is reported as
    "NAME (the solution's ... cell)" and, unless check=True, fixed in place before its stub is
    written. A README.md beside the solutions folder that holds the badge-table markers gets
    that table regenerated the same way.
    """
    import nbformat

    drifted = []
    titles, drills = {}, {}
    for path in sorted(Path(solutions).glob("*.ipynb")):
        original = path.read_text()
        nb = nbformat.reads(original, as_version=4)
        titles[path.name] = _title(nb, path.stem)
        drills[path.stem] = dict(nb.metadata.get("contrastive_drills", {}))
        changed = apply_template(nb, path.name, where=str(path),
                                 written=written_drills(solutions))
        if changed:
            which = " and ".join([", ".join(changed[:-1]), changed[-1]] if len(changed) > 1
                                 else changed)
            cells = "cells" if len(changed) > 1 else "cell"
            drifted.append(f"{path.name} (the solution's {which} {cells})")
            if not check:
                _rewrite_solution(path, original, nb)
        text = nbformat.writes(make_stub(nb)) + "\n"
        target = Path(notebooks) / path.name
        current = target.read_text() if target.exists() else None
        if current != text:
            drifted.append(path.name)
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    known = {p.name for p in Path(solutions).glob("*.ipynb")}
    # A stub with no solution is reported, never deleted: it may hold a learner's work.
    drifted += [p.name for p in sorted(Path(notebooks).glob("*.ipynb")) if p.name not in known]
    readme = Path(solutions).resolve().parent / "README.md"
    if readme.exists():
        text = readme.read_text()
        updated = with_badge_table(text, titles)
        if updated != text:
            drifted.append("README.md (the Colab badge table)")
        with_both = with_drill_table(updated, drills)
        if with_both != updated:
            drifted.append("README.md (the drill table)")
        if with_both != text and not check:
            readme.write_text(with_both)
    return drifted


BADGES_BEGIN = "<!-- BEGIN COLAB BADGES: generated by `python -m grader stubs` -->"
BADGES_END = "<!-- END COLAB BADGES -->"


def _title(nb, fallback: str) -> str:
    """The first markdown heading of a notebook, without its #s."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def badge_table(titles: dict[str, str]) -> str:
    """A markdown table: each drill, its learner's notebook, and its "Open in Colab" badge."""
    from ._project import badge_source

    rows = ["| drill | open it in Colab |", "| --- | --- |"]
    for name, title in sorted(titles.items()):
        rows.append(f"| [{title.replace('|', '&#124;')}](notebooks/{name}) | "
                    f"{badge_source(name)} |")
    return "\n".join(rows)


def _replace_block(text: str, begin: str, end: str, body: str) -> str:
    """`text` with what lies between the two marker lines replaced (unchanged without them)."""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        return text
    return text[: start + len(begin)] + "\n" + body + "\n" + text[stop:]


def with_badge_table(text: str, titles: dict[str, str]) -> str:
    """`text` with the table between the badge markers regenerated (unchanged without them)."""
    return _replace_block(text, BADGES_BEGIN, BADGES_END, badge_table(titles))


DRILLS_BEGIN = "<!-- BEGIN DRILL TABLE: generated by `python -m grader stubs` -->"
DRILLS_END = "<!-- END DRILL TABLE -->"


def drill_table(drills: dict[str, dict]) -> str:
    """The README's table of drills: each solution's `contrastive_drills` metadata (its paper and
    what its demo shows) and the graded names the grader registers for it."""
    from . import drills as _registers_every_drill  # noqa: F401
    from .checks import REGISTRY

    rows = ["| drill | paper | you implement | what the demo shows (CPU, no download) | status |",
            "| --- | --- | --- | --- | --- |"]
    for name, meta in sorted(drills.items()):
        graded = ", ".join(f"`{n}`" for n in REGISTRY.in_drill(name)) or "-"
        rows.append(f"| [{name}](notebooks/{name}.ipynb) | {meta.get('paper', '')} | {graded} | "
                    f"{meta.get('demo', '')} | {meta.get('status', 'ready')} |")
    return "\n".join(rows)


def with_drill_table(text: str, drills: dict[str, dict]) -> str:
    return _replace_block(text, DRILLS_BEGIN, DRILLS_END, drill_table(drills))
