"""The grader on a busy machine: with two CPU-burning processes beside it and torch's default
thread count, every correct implementation (the references and the ones written differently)
passes every check. Time limits count the worker thread's CPU time, so waiting for a core is
not held against the learner."""

import subprocess
import sys

import pytest
import torch

import grader
from grader.checks import REGISTRY
from tests import alternatives, test_simclr
from tests.learners import all_learners
from tests.nbtools import exec_sources, load_graded, solution_paths

BURN = "import time\nend = time.time() + 600\nwhile time.time() < end:\n    pass\n"


def _correct_implementations():
    cases = []
    for path in solution_paths():
        namespace = load_graded(path)
        drill = path.stem
        cases += [(f"{drill}: {name} (solution)", name, namespace[name])
                  for name, cl in REGISTRY.items() if cl.drill == drill and name in namespace]
    for module in all_learners():
        namespace = exec_sources(module.LEARNER.values())
        cases += [(f"{name} (learner path)", name, namespace[name]) for name in module.LEARNER
                  if name in REGISTRY]
    for source in (test_simclr.ALTERNATIVES, alternatives.ALTERNATIVES):
        cases += [(f"{name} ({obj.__name__})", name, obj) for name, obj in source]
    return cases


@pytest.fixture(scope="module")
def busy_machine():
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(2)]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))  # a notebook's default, not the tests' one thread
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        for p in burners:
            p.kill()
            p.wait()


def test_there_are_several_correct_implementations_of_every_graded_name():
    counts = {name: 0 for name in REGISTRY}
    for _, name, _ in _correct_implementations():
        counts[name] += 1
    assert all(n >= 2 for n in counts.values()), counts


def test_every_correct_implementation_passes_every_check_on_a_busy_machine(busy_machine):
    failed = []
    for label, name, obj in _correct_implementations():
        report = grader.check(name, obj)
        if not report.passed:
            failed.append(f"{label}:\n{report}")
    assert not failed, "\n\n".join(failed)
