"""The `grade` command: expand the paths, grade each notebook, write its rows, exit."""

from __future__ import annotations

import math
import sys
from contextlib import closing
from pathlib import Path

from ..status import (
    NOTEBOOK_ERROR,
    NOTEBOOK_UNREADABLE,
)
from .kernel import grade_notebook
from .render import Csv, Json, Table, exit_code
from .results import DEFAULT_TIMEOUT, NotebookResult, UsageError

# -- the command ------------------------------------------------------------------------------


def expand(paths: list[str]) -> list[tuple[Path, str]]:
    """Files as given, folders as their *.ipynb; raises UsageError on a missing path."""
    found = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            inside = sorted(path.glob("*.ipynb"))
            if not inside:
                raise UsageError(f"{p}: a folder with no notebooks in it")
            found += [(q, str(q)) for q in inside]
        elif path.exists():
            found.append((path, p))
        else:
            raise UsageError(f"{p}: no such file")
    return found


def check_limits(timeout, jobs) -> None:
    """Raise UsageError unless the time limit is a positive finite number and jobs a positive
    whole number (argparse's float() takes "nan" and "inf")."""
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"--timeout must be a positive, finite number of seconds, not {timeout}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"--jobs must be a positive whole number, not {jobs}")


def grade_one(path: Path, timeout: float, shown: str, skip_demos: bool) -> NotebookResult:
    """Grade one notebook; a module-level function, so that a worker process can run it."""
    from ..checks import REGISTRY

    return grade_notebook(path, timeout, REGISTRY, display_name=shown, skip_demos=skip_demos)


def graded(todo, timeout, skip_demos, jobs):
    """Yield (index in todo, result) as each notebook is graded: in order with one job, in
    order of completion with several, each in its own worker process (its own kernel too)."""
    if jobs == 1 or len(todo) == 1:
        for index, (path, shown) in enumerate(todo):
            yield index, grade_one(path, timeout, shown, skip_demos)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: a fork of a process whose torch thread pools are running can deadlock.
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(grade_one, path, timeout, shown, skip_demos): (index, shown)
                   for index, (path, shown) in enumerate(todo)}
        for future in as_completed(futures):
            index, shown = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # the worker died (out of memory, killed): say so, go on
                result = NotebookResult(shown, NOTEBOOK_ERROR,
                                        f"the grading worker failed: {type(exc).__name__}: {exc}")
            yield index, result
    finally:  # stopped early (Ctrl-C, a closed pipe): start nothing more
        pool.shutdown(wait=True, cancel_futures=True)


class Progress:
    """The bar on stderr: notebooks done of all, how many fail so far, and which are left.
    Writing to stdout goes through write(), which lifts the bar first so the two never mix
    on a terminal."""

    def __init__(self, names: list[str], show: bool):
        self.left, self.failing, self.bar = list(names), 0, None
        if show:
            try:
                from tqdm import tqdm
            except ImportError:  # the bar is a convenience; grading goes on without it
                return
            self.bar = tqdm(total=len(names), file=sys.stderr, unit="notebook", desc="grading",
                            dynamic_ncols=True)
            self._postfix()

    def _postfix(self) -> None:
        names = [Path(n).name for n in self.left]
        more = f" +{len(names) - 2}" if len(names) > 2 else ""
        self.bar.set_postfix(failing=self.failing, left=" ".join(names[:2]) + more or "-")

    def write(self, text: str) -> None:
        if not text:
            return
        if self.bar is not None:
            self.bar.clear()
        sys.stdout.write(text)
        sys.stdout.flush()  # a row on the screen (or in the file) is a row kept if killed now
        if self.bar is not None:
            self.bar.refresh()

    def done(self, result: NotebookResult) -> None:
        if result.notebook in self.left:
            self.left.remove(result.notebook)
        self.failing += not result.passed
        if self.bar is not None:
            self._postfix()
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(paths: list[str], *, fmt: str = "table", timeout: float = DEFAULT_TIMEOUT,
         jobs: int = 1, progress: bool | None = None, skip_demos: bool = False) -> int:
    """Grade the notebooks, writing each one's rows as it is graded. `progress` None: a bar on
    stderr when it is a terminal."""
    try:
        todo = expand(paths)
        check_limits(timeout, jobs)
    except UsageError as exc:
        print(f"grade: {exc}", file=sys.stderr)
        return 2
    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as exc:
        print(f"grade: {exc.name} is missing; install the command line's extra with "
              "`pip install 'contrastive-drills[cli]'` (or `make setup`)", file=sys.stderr)
        return 2
    from ..checks import REGISTRY

    names = [shown for _, shown in todo]
    if fmt == "json":
        out = Json(timeout)
    elif fmt == "csv":
        out = Csv()
    else:
        out = Table.for_registry(names, REGISTRY)
    bar = Progress(names, sys.stderr.isatty() if progress is None else progress)
    results: list[NotebookResult | None] = [None] * len(todo)
    try:
        bar.write(out.header())
        with closing(graded(todo, timeout, skip_demos, jobs)) as stream:
            for index, result in stream:
                results[index] = result
                bar.write(out.rows(result))
                bar.done(result)
    finally:
        bar.close()
    sys.stdout.write(out.footer(results))  # in the order given, whatever order they finished
    sys.stdout.flush()
    for r in results:
        if r.status == NOTEBOOK_UNREADABLE:
            print(f"grade: {r.notebook}: {r.message}", file=sys.stderr)
    return exit_code(results)
