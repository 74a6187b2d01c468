"""The grader's hints point at the idea and never hand over code (SPEC, "The learner finds the
mistakes"): no hint a learner can be shown holds a statement, a call, an index or a formula.

What counts as code is the rule `CODE` below. Names are not code: a hint may name what the
learner must know exists (F.normalize, torch.no_grad, x.shape, the `generator` argument). What
*does* something is code, and so is maths written as code: an assignment, a keyword argument, a
comparison or an equation (any `=`); a call (a name straight before a parenthesis, with or without
arguments: `exp(t)` is a formula, `loss.item()` a statement); indexing, slices and lists (square
brackets); arithmetic between operands (`*`, `+`, `**`, and `-` or `/` set apart by spaces, which
the project's prose never uses as dashes); a tuple written as code; a backtick span that is more
than a name; an ellipsis standing for elided code. Numbers such as 1/0.07 or 2N-1 stay allowed.

The hints are collected three ways: every registered check's own hint; every hint written as a
literal in grader/drills and grader/kit (a `hint=` argument, a `*_HINT` constant, a `HINTS` dict),
reached by a botch or not; and every hint a learner actually receives when the references and
every botch of the catalogue are graded (hints built at run time, from helpers and dicts).
The hints of the grader's core (sandbox.py, checks.py: crashes, time-outs, wrong types) are
read from those files and held to the same rule.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import grader
from tests import catalogue_run

PACKAGE = Path(grader.__file__).resolve().parent

CODE = {
    "an `=` (an assignment, a keyword argument, a comparison or an equation)": r"=",
    "a call (a name straight before a parenthesis)": r"[\w\]]\(",
    "square brackets (indexing, a slice or a list)": r"[\[\]]",
    "arithmetic between operands": r"[\w)\]]\s*(?:\*\*?|\+)\s*[\w(]|[\w)]\s+[-/]\s+[\w(]",
    "a tuple written as code": r"\(\s*\w+\s*,\s*\)",
    # spans pair up from the left: skip the spans that are names, then find one that is not
    "a backtick span that is more than a name": r"^[^`]*(?:`[\w.]*`[^`]*)*`[^`]*[^\w.`][^`]*`",
    "an ellipsis standing for elided code": r"\.\.\.|\u2026",
}


def code_in(hint: str) -> list[str]:
    """Why `hint` reads as code: the names of the CODE rules it matches (empty: it is prose)."""
    return [why for why, pattern in CODE.items() if re.search(pattern, hint)]


def _offending(hints) -> str:
    """The hints that read as code, one per line, with where they come from and why."""
    bad = {}
    for where, hint in hints:
        if hint and code_in(hint):
            bad.setdefault(hint, []).append(where)
    return "\n".join(f"- {hint!r}\n    ({'; '.join(code_in(hint))}) from {', '.join(w[:3])}"
                     + (f" and {len(w) - 3} more" if len(w) > 3 else "")
                     for hint, w in sorted(bad.items()))


# -- static: the hints as written ----------------------------------------------------------------


def _is_hint_name(name: str) -> bool:
    return bool(re.search(r"(^|_)HINTS?$", name.lstrip("_").upper()))


def _strings(node, constants) -> list[str]:
    """The strings a hint expression can give: literals, f-strings (each field read as X), module
    constants by name, both arms of a conditional and the values of a dict."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)]
    if isinstance(node, ast.Name):
        return constants.get(node.id, [])
    if isinstance(node, ast.IfExp):
        return _strings(node.body, constants) + _strings(node.orelse, constants)
    if isinstance(node, ast.Dict):
        return [s for v in node.values for s in _strings(v, constants)]
    return []


def _written_hints(paths) -> list[tuple[str, str]]:
    """(file:line, hint) for every hint literal in `paths`: `hint=` or `*_hint=` arguments,
    assignments to `.hint`, and constants named *_HINT or HINTS."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        constants = {}
        for node in tree.body:  # module constants first: a hint may name one defined below
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                constants[node.targets[0].id] = _strings(node.value, {})
        where = f"{path.relative_to(PACKAGE.parent)}:"
        for node in ast.walk(tree):
            values = []
            if isinstance(node, ast.keyword) and node.arg and node.arg.endswith("hint"):
                values = [node.value]
            elif isinstance(node, ast.Assign):
                targets = [t.id if isinstance(t, ast.Name) else t.attr
                           for t in node.targets if isinstance(t, (ast.Name, ast.Attribute))]
                if any(_is_hint_name(t) for t in targets):
                    values = [node.value]
            found += [(f"{where}{v.lineno}", s) for v in values for s in _strings(v, constants)]
    return found


def _drill_and_kit_files() -> list[Path]:
    return sorted([*(PACKAGE / "drills").rglob("*.py"), *(PACKAGE / "kit").rglob("*.py")])


def _core_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if not {"drills", "kit"} & set(p.relative_to(PACKAGE).parts))


def _registry_hints() -> list[tuple[str, str]]:
    return [(f"{cl.drill} {cl.graded_name}: {c.title!r}", c.hint)
            for cl in grader.REGISTRY.values() for c in cl.checks]


# -- dynamic: the hints a learner receives -------------------------------------------------------


def _received_hints() -> list[tuple[str, str]]:
    """(who: which check, hint) for every hint in the reports of the references and of every
    botch in the catalogue (tests.catalogue_run: one grading pass, shared)."""
    return [(f"{who}, {r.name!r}", r.hint)
            for who, _drill, _name, report in catalogue_run.graded()
            for r in report.results if r.hint]


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("hint", [
    "idx = torch.randperm(len(data), generator=generator)[:batch_size] at every step",
    "return (predictions == test_labels).float().mean().item()",
    "self.<name> = nn.Parameter(torch.tensor(<initial log-scale>))",
    "write into the existing parameters (p.mul_(...).add_(...)) under torch.no_grad()",
    "momentum = 1 is a frozen teacher",
    "the parameter at log(1/0.07) = 2.659",
    "for each sample: -sum_k P_teacher[k] * log P_student[k]",
    "loss = (CE over rows + CE over columns) / 2",
    "new = momentum * center + (1 - momentum) * mean",
    "write `t = t - center`, not `t -= center`",
    "end with `return losses`",
    "keep `z1` and `z2`, then `z = z1 + z2`",
    "return exactly one class index per image: shape (N,)",
    "call optimizer.zero_grad() before each backward",
])
def test_the_rule_flags_code_and_formulas(hint):
    assert code_in(hint), f"the rule lets code through: {hint!r}"


@pytest.mark.parametrize("hint", [
    "update the teacher's parameters in place, without autograd, from the matching student "
    "parameters",
    "normalise into a new tensor, for example with F.normalize, rather than in place",
    "run the whole update without autograd, inside a torch.no_grad block",
    "hand the `temperature` argument on to nt_xent_loss",
    "store them as the model's `backbone` and `projector` attributes",
    "the multiplier starts at 1/0.07 and the parameter at the log of that, about 2.659",
    "with every embedding equal, each anchor sees 2N-1 equally likely candidates",
    "map an (N, C, H, W) batch to a batch of the same dtype; read N, C, H, W from x.shape",
    "use F.log_softmax for the student and F.softmax for the teacher, never exp by hand",
    "with two views there are exactly two pairs: (teacher 0, student 1), (teacher 1, student 0)",
])
def test_the_rule_lets_prose_that_names_things_through(hint):
    assert not code_in(hint), f"the rule flags prose: {hint!r} ({code_in(hint)})"


def test_no_registered_check_has_a_hint_with_code():
    bad = _offending(_registry_hints())
    assert not bad, "registered checks whose hint hands over code:\n" + bad


def test_no_hint_written_in_the_drills_or_the_kit_has_code():
    written = _written_hints(_drill_and_kit_files())
    assert len(written) > 50, f"only {len(written)} hint literals found: is the scan broken?"
    bad = _offending(written)
    assert not bad, "hints in grader/drills and grader/kit that hand over code:\n" + bad


def test_no_hint_a_graded_botch_or_reference_receives_has_code():
    received = _received_hints()
    assert len(received) > 100, f"only {len(received)} hints received: is the catalogue run?"
    bad = _offending(received)
    assert not bad, "hints the grader gives for the catalogue that hand over code:\n" + bad


def test_no_hint_of_the_grader_core_has_code():
    bad = _offending(_written_hints(_core_files()))
    assert not bad, "hints in the grader's core that hand over code:\n" + bad
