"""The command line: `python -m grader grade NOTEBOOK...`, `stubs [--check]`, `list`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .grade import DEFAULT_TIMEOUT


def cmd_stubs(args) -> int:
    from .stubs import StubError, sync

    try:
        drifted = sync(Path(args.solutions), Path(args.notebooks), check=args.check)
    except StubError as exc:
        print(f"stubs: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if drifted:
            print("stubs out of date (run `make stubs`): " + ", ".join(drifted))
            return 1
        print("stubs are in sync with solutions")
        return 0
    print("wrote " + (", ".join(drifted) if drifted else "nothing: stubs already in sync"))
    return 0


def cmd_grade(args) -> int:
    from .grade import main as grade_main

    return grade_main(args.notebooks, fmt=args.format, timeout=args.timeout, jobs=args.jobs,
                      progress=args.progress, skip_demos=args.skip_demos)


def positive_int(text: str) -> int:
    """argparse type for --jobs: a whole number of at least 1 (else exit 2 with a message)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text!r}")
    return value


def cmd_list(args) -> int:
    from . import REGISTRY

    by_drill: dict[str, list] = {}
    for cl in REGISTRY.values():
        by_drill.setdefault(cl.drill, []).append(cl)
    for drill in sorted(by_drill):
        print(drill)
        for cl in by_drill[drill]:
            print(f"  {cl.graded_name:<24} {len(cl.checks):>3} checks")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stubs", help="regenerate notebooks/ from solutions/")
    p.add_argument("--check", action="store_true", help="exit 1 if the stubs are out of date")
    p.add_argument("--solutions", default="solutions")
    p.add_argument("--notebooks", default="notebooks")
    p.set_defaults(run=cmd_stubs)
    p = sub.add_parser(
        "grade", help="run notebooks in fresh kernels and grade them (exit 0: all pass)",
        description="Execute each notebook (never written to) in its own fresh kernel, grade "
        "the graded names of its drill inside that kernel, and print a table. Exit 0 when "
        "everything passes, 1 when anything fails, is missing or times out, 2 on bad usage or "
        "an unreadable notebook. Each notebook's rows are written as soon as it is graded, so "
        "a batch stopped midway keeps every row it finished.")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK",
                   help="notebook files, or folders whose *.ipynb to grade")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="format", action="store_const", const="json",
                     help="JSON Lines: one object per notebook with every check's result, "
                     "written as it is graded, then one {\"summary\": ...} line")
    fmt.add_argument("--csv", dest="format", action="store_const", const="csv",
                     help="one CSV row per notebook and graded name")
    p.set_defaults(format="table")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"seconds allowed to run each notebook's cells (default {DEFAULT_TIMEOUT})")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="grade N notebooks at once, each in its own worker process and kernel; "
                   "rows then come in the order the notebooks finish (default 1: in order)")
    p.add_argument("--skip-demos", action="store_true",
                   help="skip the cells tagged `demo` (the training demonstrations) and the "
                   "notebook's own grader cells: faster when only the graded functions matter")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(run=cmd_grade)
    p = sub.add_parser("list", help="the drills, their graded names and check counts")
    p.set_defaults(run=cmd_list)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
