"""The stub generator: solution regions replaced, malformed regions refused, the repo in sync."""

import subprocess
import sys

import pytest

from grader.stubs import StubError, solution_regions, strip_regions
from tests.nbtools import ROOT

SOURCE = '''def f(x):
    """Doc."""
    # BEGIN SOLUTION
    y = x * 2
    return y
    # END SOLUTION


class Model:
    def forward(self, x):
        # BEGIN SOLUTION
        return x
        # END SOLUTION
'''


def test_a_region_becomes_a_raise_naming_the_enclosing_function_at_its_indentation():
    out = strip_regions(SOURCE)
    assert '    raise NotImplementedError("implement `f`")' in out
    assert '        raise NotImplementedError("implement `forward`")' in out
    assert "x * 2" not in out and "return x" not in out
    assert '"""Doc."""' in out


def test_a_placeholder_region_keeps_the_placeholder_line():
    src = "# BEGIN SOLUTION: tau = ...  # YOUR CODE HERE\ntau = 0.5\n# END SOLUTION\nprint(tau)"
    assert strip_regions(src) == "tau = ...  # YOUR CODE HERE\nprint(tau)"


def test_a_markdown_region_is_hidden():
    src = "Pitch:\n\n<!-- BEGIN SOLUTION -->\nSimCLR learns...\n<!-- END SOLUTION -->\nNext."
    assert strip_regions(src, markdown=True) == "Pitch:\n\n*Your answer here.*\nNext."


@pytest.mark.parametrize("bad", [
    "# BEGIN SOLUTION\nx = 1",
    "x = 1\n# END SOLUTION",
    "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION",
])
def test_malformed_regions_are_refused(bad):
    with pytest.raises(StubError):
        strip_regions(bad, where="cell 3")


def test_solution_regions_lists_exactly_the_hidden_lines():
    assert [s.strip() for s in solution_regions(SOURCE)] == ["y = x * 2", "return y", "return x"]


def test_the_committed_stubs_are_in_sync():
    done = subprocess.run([sys.executable, "-m", "grader", "stubs", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readme_drill_table_is_generated_from_the_solutions_and_the_registry():
    from grader.stubs import DRILLS_BEGIN, DRILLS_END, with_drill_table

    text = f"intro\n{DRILLS_BEGIN}\nstale\n{DRILLS_END}\noutro\n"
    meta = {"02_simclr": {"paper": "SimCLR", "demo": "digits"}}
    out = with_drill_table(text, meta)
    row = next(line for line in out.splitlines() if line.startswith("| [02_simclr]"))
    assert "`augment`, `SimCLRModel`, `train_simclr`, `linear_probe`" in row
    assert "| SimCLR |" in row and "| digits |" in row and "stale" not in out
    assert out.startswith("intro\n") and out.endswith("outro\n")
    readme = (ROOT / "README.md").read_text()
    assert DRILLS_BEGIN in readme and DRILLS_END in readme
