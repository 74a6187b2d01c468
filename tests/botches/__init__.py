"""Catalogues of botched implementations: one module per drill, each a list of `Botch`."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass


@dataclass
class Botch:
    """A classic mistake, written as code, and words the grader's diagnosis must contain."""

    name: str
    graded_name: str
    obj: object
    expect: str  # a phrase (case-insensitive) of the diagnosis this botch must receive


def all_botches() -> list[Botch]:
    found = []
    for module in pkgutil.iter_modules(__path__):
        found += importlib.import_module(f"{__name__}.{module.name}").CATALOGUE
    return found
