"""The code passes the linter that `make lint` runs."""

import subprocess
import sys

from tests.nbtools import ROOT


def test_ruff_finds_nothing():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "grader", "tests", "benchmarks", "conftest.py"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
