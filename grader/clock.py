"""The drill clock: the 60-minute time box, its four blocks, and what the learner did in each.

    clock = grader.clock.start("01_nt_xent")  # near the top: the schedule; starts or resumes
    clock.status()                            # the block you are in, time left in it and overall
    clock.mark("implement")                   # optional: say when you move on to a block
    clock.reset()                             # start the hour again
    clock.summary(rubric="...")               # the last cell: time per block, scores, rubric

The state is a small JSON file beside the notebook (the kernel's working directory), so the clock
survives a kernel restart: run the start cell again and it carries on. The file is replaced
atomically, and a damaged one is salvaged or started afresh, never a crash. Nothing runs in the
background: every figure is computed when asked for. `grader.check` records each score here and,
when a person is at the keyboard, shows the status as an output of its own (never inside the
report, whose output the notebook tests compare). CONTRASTIVE_DRILLS_CLOCK=off turns the clock
off: no file, no status lines (the batch grader sets it in the kernels it starts).
"""

from __future__ import annotations

import html
import json
import math
import os
import sys
import time

from .clock_state import (  # the schedule and the state file live there
    ENV,
    KEYS,
    SCHEDULE,
    STALE_AFTER,
    TOTAL_MINUTES,
    _write_atomic,
    load_state,
    state_path,
)
from .clock_view import (  # noqa: F401
    _bar_html,
    _hm,
    _mmss,
    _summary_html,
    _window,
    learner_status,
)

FORMAT = 1

DEFAULT_RUBRIC = """\
3  every check passes inside the hour; you can explain each check and write the equation
2  every check passes, but an explanation is shaky or needed a hint, or the hour ran out
1  the code runs, but some checks still fail
0  the code does not run, or fails the basic cases"""

_current: Clock | None = None


def _disabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() in {"off", "0", "false", "no"}


def _someone_watching() -> bool:
    """True unless this is a Jupyter kernel executing a request that cannot ask for input.

    Notebook front ends (JupyterLab, Notebook, Colab, VS Code) send execute requests that allow
    input(); automatic runners (nbclient, nbval, papermill) do not. A time-dependent status line
    in the grader cell is useful to the first and would break nbval's output comparison for the
    second. Outside a kernel (a script, a terminal) the line is always shown.
    """
    shell = sys.modules.get("IPython") and _ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return True
    return bool(getattr(kernel, "_allow_stdin", True))


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _show(obj) -> None:
    """Display obj as its own output: rich in Jupyter, its text anywhere else."""
    shell = _ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        display(obj)
    else:
        print(repr(obj))


class _Text:
    """Something shown as text in a terminal and as HTML in Jupyter."""

    def __init__(self, text: str, html_text: str):
        self.text, self.html = text, html_text

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return self.html


class Status(_Text):
    """Where the learner is in the hour (a snapshot; see `Clock.status`)."""

    def __init__(self, text: str, html_text: str, *, block: str | None, block_left: float,
                 left: float, elapsed: float):
        super().__init__(text, html_text)
        self.block, self.block_left, self.left, self.elapsed = block, block_left, left, elapsed


class Summary(_Text):
    """The end-of-drill summary; `data` holds the figures behind the text."""

    def __init__(self, text: str, html_text: str, data: dict):
        super().__init__(text, html_text)
        self.data = data


# -- the clock -----------------------------------------------------------------------------------


class Clock:
    """One drill's hour. Times are seconds since the epoch from `now()` (injectable for tests)."""

    def __init__(self, drill: str, directory=None, *, now=time.time, persist: bool = True):
        self.drill = drill
        self.now = now
        self.enabled = not _disabled()
        self.persist = persist and self.enabled
        self.path = state_path(drill, directory)
        self.note = ""  # what happened on loading, shown once by start()
        self.resumed = False
        self.started = now()
        self.marks: dict[str, float] = {}  # block key -> when the learner said they moved to it
        self.scores: dict[str, dict] = {}
        if self.persist:
            state, self.note = load_state(self.path, self.started)
            if state is not None and self.started - state["started"] > STALE_AFTER:
                hours = (self.started - state["started"]) / 3600
                self.note = (f"the last attempt started {hours:.0f} hours ago; "
                             "this is a new one")
            elif state is not None:
                self.resumed = True
                self.started = state["started"]
                self.marks = state.get("marks", {})
                self.scores = state.get("scores", {})
            self._save()

    # state ---------------------------------------------------------------------------------

    def _save(self) -> None:
        if not self.persist:
            return
        state = {"started": self.started, "drill": self.drill, "format": FORMAT,
                 "marks": self.marks, "scores": self.scores}
        try:
            _write_atomic(self.path, json.dumps(state, indent=1) + "\n")
        except OSError as exc:  # a read-only folder: keep time in memory only
            self.persist = False
            print(f"(the drill clock cannot save its state: {exc}; it will not survive a restart)")

    def reset(self) -> Status:
        """Start the hour again from now: forget the marks and the scores."""
        self.started, self.marks, self.scores = self.now(), {}, {}
        self.resumed = False
        self._save()
        return self.status()

    def mark(self, block: str) -> Status:
        """Say that you are moving on to `block` ("explain", "implement" or "sanity-check")."""
        if block not in KEYS:
            raise ValueError(f"unknown block {block!r}; the blocks are {', '.join(KEYS)}")
        self.marks.setdefault(block, self.now() - self.started)
        self._save()
        return self.status()

    def record(self, report) -> None:
        """Keep a grader report's score (called by grader.check)."""
        at = self.now() - self.started
        entry = self.scores.get(report.graded_name, {})
        total = len(report.results)
        entry.update(passed=report.n_passed, total=total, last=at,
                     runs=int(entry.get("runs", 0)) + 1,
                     diagnosis="" if report.passed else report.diagnosis)
        if report.implemented and entry.get("first") is None:
            entry["first"] = at  # the first run on written code: sanity-checking has begun
        if report.passed and entry.get("all_passed") is None:
            entry["all_passed"] = at
        self.scores[report.graded_name] = entry
        self._save()

    # reading -------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return max(0.0, self.now() - self.started)

    def _starts(self, since: str = "first") -> dict[str, float]:
        """When the learner moved on to each block: its clock.mark(), and for the sanity-check
        also the first grader run on written code (since="first") or the first with every
        check passing (since="all_passed")."""
        starts = dict(self.marks)
        firsts = [s[since] for s in self.scores.values()
                  if isinstance(s.get(since), (int, float))]
        if firsts:
            starts["sanity-check"] = min(starts.get("sanity-check", math.inf), min(firsts))
        return starts

    def entered(self) -> tuple[str, float] | None:
        """The furthest block the learner has marked (a graded name passing every check counts
        as the sanity-check), and when; None before any. Running the grader while still
        implementing does not count: learners do that often."""
        starts = self._starts(since="all_passed").items()
        known = [(KEYS.index(k), k, at) for k, at in starts if k in KEYS]
        if not known:
            return None
        _, key, at = max(known)
        return key, at

    def _status_of_learner(self, t: float, left: float) -> Status:
        """The status line once the learner has marked a block: their block, not the plan's."""
        key, at = self.entered()
        text, html_text, block_left = learner_status(self.drill, t, key, at, left)
        return Status(text, html_text, block=key, block_left=block_left, left=left, elapsed=t)

    def status(self) -> Status:
        """Your block (the last you marked; before any mark, the schedule's), the time left in
        it and in the hour."""
        t = self.elapsed()
        left = TOTAL_MINUTES * 60 - t
        if not self.enabled:
            text = f"[clock] {self.drill}: the drill clock is off ({ENV}=off)"
            return Status(text, html.escape(text), block=None, block_left=0, left=0, elapsed=0)
        if left > 0 and self.entered() is not None:
            return self._status_of_learner(t, left)
        for i, b in enumerate(SCHEDULE):
            start, end = _window(i)
            if t < end:
                text = (f"[clock] {self.drill}: {_mmss(t)} in. Block {i + 1}/4, {b.title} "
                        f"({start // 60}-{end // 60} min): {_mmss(end - t, up=True)} left in "
                        f"it, {_mmss(left, up=True)} left in the hour.")
                bar = _bar_html(t)
                html_text = (f"<div style='font-family:monospace'>&#9201; <b>{_mmss(t)}</b> in "
                             f"&middot; block {i + 1}/4 <b>{html.escape(b.title)}</b>: "
                             f"{_mmss(end - t, up=True)} left in it &middot; "
                             f"{_mmss(left, up=True)} left in the hour"
                             f"{bar}</div>")
                return Status(text, html_text, block=b.key, block_left=end - t, left=left,
                              elapsed=t)
        text = (f"[clock] {self.drill}: {_mmss(t)} in: the 60-minute time box ended "
                f"{_mmss(-left)} ago. Finish up, or clock.reset() to start a new attempt.")
        return Status(text, html.escape(text).replace("[clock]", "&#9201;"), block=None,
                      block_left=0, left=left, elapsed=t)

    def __repr__(self) -> str:
        return repr(self.status())

    def _repr_html_(self) -> str:
        return self.status()._repr_html_()

    def schedule(self) -> _Text:
        rows = [f"{'time':<11} {'block':<20} what you produce"]
        cells = []
        for i, b in enumerate(SCHEDULE):
            start, end = _window(i)
            span = f"{_hm(start)}-{_hm(end)}"
            rows.append(f"{span:<11} {b.title:<20} {b.produces}")
            cells.append(f"<tr><td>{span}</td><td>{html.escape(b.title)}</td>"
                         f"<td style='text-align:left'>{html.escape(b.produces)}</td></tr>")
        head = f"Drill {self.drill}: {TOTAL_MINUTES} minutes in four blocks"
        html_text = (f"<p><b>{html.escape(head)}</b></p><table><tr><th>time</th><th>block</th>"
                     f"<th style='text-align:left'>what you produce</th></tr>{''.join(cells)}"
                     "</table>")
        return _Text(head + "\n" + "\n".join(rows), html_text)

    def blocks(self) -> list[dict]:
        """Time spent per block against the schedule, as far as the clock can tell.

        A block starts when the learner marks it; the sanity-check block also starts at the
        first grader run. Blocks with no known start are merged into the one before them.
        """
        end = self.elapsed()
        starts = self._starts()
        starts["read"] = 0.0
        groups: list[dict] = []
        for b in SCHEDULE:
            begin = starts.get(b.key)
            if begin is not None and (not groups or begin >= groups[-1]["start"]):
                groups.append({"blocks": [b.key], "start": begin, "planned": b.minutes * 60})
            else:
                groups[-1]["blocks"].append(b.key)
                groups[-1]["planned"] += b.minutes * 60
        for g, nxt in zip(groups, groups[1:] + [None], strict=True):
            g["spent"] = max(0.0, (nxt["start"] if nxt else end) - g["start"])
        return groups

    def summary(self, rubric: str | None = None) -> Summary:
        """Time per block against the schedule, the score per graded name, and the rubric."""
        t = self.elapsed()
        groups = self.blocks() if self.enabled else []
        names = sorted(self.scores)
        all_pass = bool(names) and all(self.scores[n].get("all_passed") is not None for n in names)
        finished_at = max((self.scores[n]["all_passed"] for n in names), default=None) \
            if all_pass else None
        if not names:
            ceiling = 0
        elif all_pass:
            ceiling = 3 if (not self.enabled or finished_at <= TOTAL_MINUTES * 60) else 2
        else:
            ceiling = 1 if any(self.scores[n].get("passed", 0) for n in names) else 0
        rubric_text = (rubric or DEFAULT_RUBRIC).strip()

        lines = [f"Drill {self.drill}: summary"]
        if self.enabled:
            verdict = (f"{_mmss(t)} used of {TOTAL_MINUTES}:00"
                       + (f" (over by {_mmss(t - TOTAL_MINUTES * 60)})"
                          if t > TOTAL_MINUTES * 60 else ""))
            lines += ["", f"Time: {verdict}", f"  {'block':<40} {'planned':>8} {'yours':>8}"]
            for g in groups:
                label = " + ".join(g["blocks"])
                lines.append(f"  {label:<40} {_mmss(g['planned']):>8} {_mmss(g['spent']):>8}")
            if len(groups) < len(SCHEDULE):
                lines.append("  (blocks joined by + had no mark between them: "
                             "clock.mark(\"explain\") etc. splits them)")
        else:
            lines += ["", f"Time: not measured ({ENV}=off)"]
        lines += ["", "Grader:"]
        if not names:
            lines.append("  no grader cell has run yet")
        for n in names:
            s = self.scores[n]
            when = (f"all passing at {_mmss(s['all_passed'])}" if s.get("all_passed") is not None
                    else f"latest: {s.get('diagnosis') or 'not passing yet'}")
            lines.append(f"  {n:<24} {s.get('passed', 0)}/{s.get('total', 0)} checks, "
                         f"{s.get('runs', 0)} run(s); {when}")
        lines += ["", "Rubric (grade yourself):", *("  " + r for r in rubric_text.splitlines()),
                  "", f"The checks and the clock allow you at most {ceiling}; "
                  "your explanations decide the rest."]

        data = {"drill": self.drill, "elapsed": t, "blocks": groups, "scores": self.scores,
                "ceiling": ceiling, "rubric": rubric_text}
        return Summary("\n".join(lines), _summary_html(self, t, groups, names, rubric_text,
                                                       ceiling), data)


# -- the module-level API used by the notebooks and by grader.check ---------------------------


def start(drill: str, directory=None, *, reset: bool = False, now=time.time) -> Clock:
    """Start the drill's clock, or resume it after a kernel restart; show the schedule and status.

    `directory` holds the state file (default: the working directory, which in Jupyter and Colab
    is the notebook's folder). `reset=True` starts the hour again.
    """
    global _current
    clock = Clock(drill, directory, now=now)
    if reset and clock.resumed:
        clock.reset()
    _current = clock
    if not clock.enabled:
        _show(clock.status())
        return clock
    _show(clock.schedule())
    if clock.note:
        print(f"[clock] {clock.note}")
    if clock.resumed:
        print(f"[clock] resumed: this drill started {_mmss(clock.elapsed())} ago "
              "(clock.reset() starts it again)")
    _show(clock.status())
    return clock


def current() -> Clock | None:
    return _current


def status() -> Status | None:
    """The running clock's status (None when no clock was started in this process)."""
    return None if _current is None else _current.status()


def record(report) -> None:
    """Called by grader.check: keep the score and show where the learner is in the hour.

    The status is a separate output, never part of the report, and only when a person is
    watching (see _someone_watching): automated runs see no time-dependent output.
    """
    clock = _current
    if clock is None or not clock.enabled:
        return
    clock.record(report)
    if _someone_watching():
        _show(clock.status())
