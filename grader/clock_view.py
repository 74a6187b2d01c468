"""How the drill clock looks: times as m:ss, the block windows, the summary's bar and table."""

from __future__ import annotations

import html
import math

from .clock_state import ENV, SCHEDULE, TOTAL_MINUTES


def _mmss(seconds: float, *, up: bool = False) -> str:
    """m:ss; time left is rounded up (a fresh start shows 15:00 left, not 14:59)."""
    seconds = max(0, math.ceil(seconds) if up else int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _window(index: int) -> tuple[int, int]:
    """Scheduled start and end of block `index`, in seconds from the start."""
    start = sum(b.minutes for b in SCHEDULE[:index]) * 60
    return start, start + SCHEDULE[index].minutes * 60



def _hm(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}"


def _bar_html(t: float) -> str:
    """A thin progress bar of the hour, one segment per block."""
    colours = ["#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb"]
    segs = []
    for i, b in enumerate(SCHEDULE):
        start, end = _window(i)
        done = min(1.0, max(0.0, (t - start) / (end - start)))
        segs.append(
            f"<div title='{html.escape(b.title)}' style='display:inline-block;height:6px;"
            f"width:{b.minutes * 5}px;background:linear-gradient(to right,#555 {done * 100:.0f}%,"
            f"{colours[i]} {done * 100:.0f}%);margin-right:2px'></div>")
    return "<div>" + "".join(segs) + "</div>"


def _summary_html(clock, t, groups, names, rubric_text, ceiling) -> str:
    esc = html.escape
    parts = [f"<h4>Drill {esc(clock.drill)}: summary</h4>"]
    if clock.enabled:
        over = t > TOTAL_MINUTES * 60
        parts.append(f"<p>Time: <b>{_mmss(t)}</b> used of {TOTAL_MINUTES}:00"
                     + (f" <span style='color:#b00'>(over by {_mmss(t - TOTAL_MINUTES * 60)})"
                        "</span>" if over else "") + "</p>")
        rows = "".join(
            f"<tr><td style='text-align:left'>{esc(' + '.join(g['blocks']))}</td>"
            f"<td>{_mmss(g['planned'])}</td><td>{_mmss(g['spent'])}</td></tr>" for g in groups)
        parts.append("<table><tr><th style='text-align:left'>block</th><th>planned</th>"
                     f"<th>yours</th></tr>{rows}</table>")
    else:
        parts.append(f"<p>Time: not measured ({ENV}=off)</p>")
    if names:
        rows = []
        for n in names:
            s = clock.scores[n]
            ok = s.get("all_passed") is not None
            detail = (f"all passing at {_mmss(s['all_passed'])}" if ok
                      else esc(s.get("diagnosis") or "not passing yet"))
            rows.append(f"<tr style='background:{'#e6f4ea' if ok else '#fce8e6'}'>"
                        f"<td><code>{esc(n)}</code></td><td>{s.get('passed', 0)}/"
                        f"{s.get('total', 0)}</td><td style='text-align:left'>{detail}</td></tr>")
        parts.append("<table><tr><th>graded name</th><th>checks</th>"
                     f"<th style='text-align:left'>result</th></tr>{''.join(rows)}</table>")
    else:
        parts.append("<p>Grader: no grader cell has run yet.</p>")
    parts.append(f"<p><b>Rubric</b> (grade yourself):</p><pre>{esc(rubric_text)}</pre>"
                 f"<p>The checks and the clock allow you at most <b>{ceiling}</b>; "
                 "your explanations decide the rest.</p>")
    return "<div>" + "".join(parts) + "</div>"


def learner_status(drill: str, t: float, key: str, at: float, left: float):
    """(text, html, seconds left in the block) of the status line for a learner who moved on to
    block `key` at `at` seconds: their block, its time, and the plan's block if they are behind."""
    i = [b.key for b in SCHEDULE].index(key)
    b = SCHEDULE[i]
    in_it = t - at
    block_left = b.minutes * 60 - in_it
    where = (f"{_mmss(block_left, up=True)} left of its {b.minutes} min" if block_left >= 0
             else f"{_mmss(-block_left)} over its {b.minutes} min")
    plan = next((j for j in range(len(SCHEDULE)) if t < _window(j)[1]), None)
    behind = (f" The plan is at block {plan + 1}/4, {SCHEDULE[plan].title}, by now."
              if plan is not None and plan > i else "")
    text = (f"[clock] {drill}: {_mmss(t)} in. Block {i + 1}/4, {b.title}, for {_mmss(in_it)}: "
            f"{where}, {_mmss(left, up=True)} left in the hour.{behind}")
    html_text = (f"<div style='font-family:monospace'>&#9201; <b>{_mmss(t)}</b> in &middot; "
                 f"block {i + 1}/4 <b>{html.escape(b.title)}</b>: {where} &middot; "
                 f"{_mmss(left, up=True)} left in the hour{html.escape(behind)}{_bar_html(t)}"
                 "</div>")
    return text, html_text, block_left
