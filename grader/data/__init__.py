"""Known-answer fixtures: fixed inputs and the outputs a correct implementation gives."""

import json
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent


@cache
def _read(name: str) -> str:
    # The text is cached, not the parsed cases: a string cannot be changed in place, so code
    # under test cannot edit the expected answers that later checks compare against.
    return (HERE / f"{name}.json").read_text()


def load_cases(name: str) -> tuple:
    """The stored cases for one graded name (inputs and expected outputs as nested lists), a
    fresh copy on every call."""
    return tuple(json.loads(_read(name))["cases"])
