"""Known-answer fixtures: fixed inputs and the outputs a correct implementation gives."""

import json
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent


@cache
def _read(name: str) -> tuple:
    with open(HERE / f"{name}.json") as f:
        return tuple(json.load(f)["cases"])


def load_cases(name: str) -> tuple:
    """The stored cases for one graded name (inputs and expected outputs as nested lists)."""
    return _read(name)
