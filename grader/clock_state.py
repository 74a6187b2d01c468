"""The drill clock's schedule and its state file: the four blocks of the hour, and the small JSON
file beside the notebook that lets the clock survive a kernel restart (written atomically, read
back forgivingly: a damaged file is salvaged where it can be, and never stops the notebook)."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

ENV = "CONTRASTIVE_DRILLS_CLOCK"  # "off": no state file, no status lines


@dataclass(frozen=True)
class Block:
    key: str
    title: str
    minutes: int
    produces: str


SCHEDULE = (
    Block("read", "read the paper", 15, "the key equation, the central claim, the findings"),
    Block("explain", "explain it out loud", 5, "a one-paragraph pitch; answers to the probes"),
    Block("implement", "implement", 30, "the blank functions, filled"),
    Block("sanity-check", "sanity-check", 10, "every grader check passing, each talked through"),
)
TOTAL_MINUTES = sum(b.minutes for b in SCHEDULE)
KEYS = [b.key for b in SCHEDULE]
# A state file older than this belongs to an earlier attempt: the start cell begins a new one.
STALE_AFTER = 12 * 3600


# -- the state file ------------------------------------------------------------------------------


def state_path(drill: str, directory=None) -> Path:
    return Path(directory if directory is not None else os.getcwd()) / f".drill-clock-{drill}.json"


def _write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a reader sees the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.", suffix=".tmp.json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def _salvage(text: str) -> dict | None:
    """The start time from a damaged file (cut short by a crash, say), or None.

    `started` is written near the front of the file precisely so that it survives a truncation.
    """
    m = re.search(r'"started"\s*:\s*' + _NUMBER, text)
    return {"started": float(m.group(1))} if m else None


def _valid_start(value, now: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and 0 < value <= now + 60)


def load_state(path: Path, now: float) -> tuple[dict | None, str]:
    """Read a state file: (state or None, a note on what happened if it was not clean)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, ""
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"could not read {path.name} ({exc}); starting afresh"
    try:
        state = json.loads(text)
        if not isinstance(state, dict) or not _valid_start(state.get("started"), now):
            raise ValueError("no valid start time")
    except ValueError:
        salvaged = _salvage(text)
        if salvaged and _valid_start(salvaged["started"], now):
            return salvaged, f"{path.name} was damaged; recovered the start time, lost the rest"
        return None, f"{path.name} was damaged beyond repair; starting afresh"
    clean = {"started": float(state["started"])}
    marks = state.get("marks")
    if isinstance(marks, dict):
        clean["marks"] = {k: float(v) for k, v in marks.items()
                          if k in KEYS and isinstance(v, (int, float)) and math.isfinite(v)}
    scores = state.get("scores")
    if isinstance(scores, dict):
        clean["scores"] = {k: _clean_score(v) for k, v in scores.items() if isinstance(v, dict)}
    return clean, ""


def _clean_score(entry: dict) -> dict:
    """Only the fields the clock writes, with the types it writes (a hand-edited file may lie)."""
    def number(value):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return value if ok and math.isfinite(value) else None

    clean = {k: number(entry.get(k)) for k in ("first", "last", "all_passed")}
    clean.update({k: int(number(entry.get(k)) or 0) for k in ("passed", "total", "runs")})
    clean["diagnosis"] = entry.get("diagnosis") if isinstance(entry.get("diagnosis"), str) else ""
    return clean


