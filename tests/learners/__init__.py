"""Learners as data: for each drill, a learner's own correct answers, written unlike the solution.

Each module names its drill (`SOLUTION`, the solution notebook's stem), holds `LEARNER` (graded
name, or helper, -> the source a learner would paste into the stub's cell), `DEFINES` (the text
that finds that cell in the stub) and `DEMO_SAYS` (a regular expression the demo prints once its
asserted claims hold); `GRADED` lists the names to grade when it is not every key of LEARNER.
tests/test_learner_paths.py runs them all; adding a drill's learner is adding a module here.
"""

import importlib
import pkgutil


def all_learners():
    return [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]
