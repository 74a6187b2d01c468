"""Regenerate grader/data/*.json from the solution notebooks: `python -m tests.known_answers`."""

import json

from tests.known_answer_generators import generators
from tests.nbtools import ROOT, SOLUTIONS, load_graded

DATA = ROOT / "grader" / "data"


def build() -> dict:
    files = {}
    for gen in generators():
        files.update(gen.make(load_graded(SOLUTIONS / f"{gen.SOLUTION}.ipynb")))
    return files


if __name__ == "__main__":
    for stem, content in build().items():
        (DATA / f"{stem}.json").write_text(json.dumps(content, indent=1) + "\n")
        print(f"wrote grader/data/{stem}.json")
