"""Where the project lives: the repository URL (set here and nowhere else) and what follows from it.

The "Open in Colab" badge and the set-up cell of every notebook are produced from these templates
by `python -m grader stubs`; `python -m grader stubs --check` fails when a notebook's copy differs.
"""

from __future__ import annotations

REPOSITORY = "https://github.com/contrastive-drills/contrastive-drills"
BRANCH = "main"
PACKAGE = "contrastive-drills"
# Points the set-up cell's pip install somewhere else (a local checkout, a fork, a wheel).
SOURCE_ENV = "CONTRASTIVE_DRILLS_SOURCE"

BADGE_TAG = "colab-badge"
SETUP_TAG = "setup"
SOLUTION_TAG = "solution-link"  # the last cell: where the worked solution is
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def github_path() -> str:
    """`owner/name` of the repository, as Colab's URLs spell it."""
    return REPOSITORY.removeprefix("https://github.com/").strip("/")


def install_source() -> str:
    """What the set-up cell hands to pip when the grader is missing."""
    return f"git+{REPOSITORY}@{BRANCH}"


def colab_url(notebook: str) -> str:
    """Colab's URL for the learner's copy of a drill, e.g. colab_url("01_nt_xent.ipynb")."""
    return f"https://colab.research.google.com/github/{github_path()}/blob/{BRANCH}/notebooks/{notebook}"


def solution_url(notebook: str) -> str:
    """Colab's URL for a drill's worked solution."""
    return colab_url(notebook).replace("/notebooks/", "/solutions/")


def solution_link_source(notebook: str) -> str:
    """The markdown of the closing cell: the worked solution, for after the summary."""
    github = f"{REPOSITORY}/blob/{BRANCH}/solutions/{notebook}"
    return (f"**The worked solution** of this drill, every cell run: "
            f"[![Open In Colab]({BADGE_IMAGE})]({solution_url(notebook)}) or "
            f"[read it on GitHub]({github}). Open it after your own attempt and the summary above.")


def badge_source(notebook: str) -> str:
    """The markdown of the "Open in Colab" badge cell."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook)})"


SETUP_TEMPLATE = '''\
# Set-up: makes the grader importable. Locally `make setup` has installed it; in Colab this
# installs it from the project's repository, and nothing else (Colab has torch and numpy).
try:
    import grader
except ImportError:
    import importlib
    import os
    import subprocess
    import sys

    source = os.environ.get("{env}") or (
        "{source}")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-deps", source])
    importlib.invalidate_caches()
    import grader'''


def setup_source() -> str:
    """The code of the set-up cell (the same in every notebook)."""
    return SETUP_TEMPLATE.format(env=SOURCE_ENV, source=install_source())


def template_sources(notebook: str) -> dict[str, str]:
    """The cell source each templated tag must have in `notebook` (a file name)."""
    return {BADGE_TAG: badge_source(notebook), SETUP_TAG: setup_source(),
            SOLUTION_TAG: solution_link_source(notebook)}
