"""The drill clock: schedule, status, restarts, damaged state files, reset, summary, quiet runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import grader
from grader import clock as gc
from grader.report import FAIL, PASS, TODO, CheckResult, Report
from tests.nbtools import ROOT

T0 = 1_800_000_000.0  # an arbitrary fixed "now" for the start of a drill


class FakeTime:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, minutes=0, seconds=0):
        self.t += minutes * 60 + seconds


@pytest.fixture(autouse=True)
def clock_on(monkeypatch):
    monkeypatch.delenv(gc.ENV, raising=False)
    monkeypatch.setattr(gc, "_current", None)


def report(name="nt_xent_loss", passed=3, total=4, todo=False):
    results = []
    for i in range(total):
        if todo:
            results.append(CheckResult(f"check {i}", False, status=TODO))
        elif i < passed:
            results.append(CheckResult(f"check {i}", True, status=PASS))
        else:
            results.append(CheckResult(f"check {i}", False, diagnosis="the diagonal is not masked",
                                       status=FAIL))
    return Report(name, results)


def test_status_names_the_block_and_the_time_left_in_it_and_overall(tmp_path):
    now = FakeTime()
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    expected = [  # (minutes in, block, seconds left in the block, seconds left in the hour)
        (0, "read", 15 * 60, 60 * 60),
        (14.5, "read", 30, 45.5 * 60),
        (17, "explain", 3 * 60, 43 * 60),
        (20, "implement", 30 * 60, 40 * 60),
        (55, "sanity-check", 5 * 60, 5 * 60),
    ]
    for minutes, block, block_left, left in expected:
        now.t = T0 + minutes * 60
        status = clock.status()
        assert (status.block, status.block_left, status.left) == (block, block_left, left)
    now.t = T0 + 0.4  # time left is rounded up: a fresh start shows the whole block
    assert "15:00 left in it, 60:00 left in the hour" in str(clock.status())
    now.t = T0 + 17 * 60 + 5
    text = str(clock.status())
    assert "explain it out loud" in text and "2:55 left in it" in text
    assert "42:55 left in the hour" in text


def test_status_after_the_hour_says_the_time_box_is_over(tmp_path):
    now = FakeTime()
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    now.advance(minutes=63, seconds=10)
    status = clock.status()
    assert status.block is None and status.left == -(3 * 60 + 10)
    assert "ended 3:10 ago" in str(status) and "clock.reset()" in str(status)


def test_start_shows_the_schedule_and_the_status(tmp_path, capsys):
    clock = gc.start("01_nt_xent", tmp_path, now=FakeTime())
    out = capsys.readouterr().out
    for block in gc.SCHEDULE:
        assert block.title in out
    assert "0:15-0:20" in out and "15:00 left in it" in out
    assert gc.current() is clock


def test_state_file_sits_beside_the_notebook_and_is_replaced_atomically(tmp_path, monkeypatch):
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        # what is about to become the state file is already complete
        replaced.append((os.path.dirname(src), json.loads(open(src).read())))
        real_replace(src, dst)

    monkeypatch.setattr(gc.os, "replace", spy)
    now = FakeTime()
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    now.advance(minutes=30)
    clock.record(report())
    assert clock.path == tmp_path / ".drill-clock-01_nt_xent.json"
    assert len(replaced) == 2
    assert all(folder == str(tmp_path) for folder, _ in replaced)
    assert replaced[-1][1]["scores"]["nt_xent_loss"]["passed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".drill-clock-01_nt_xent.json"]


def test_a_crash_while_saving_leaves_the_previous_state_intact(tmp_path, monkeypatch):
    now = FakeTime()
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    before = clock.path.read_text()

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(gc.os, "fsync", crash)
    clock.record(report())  # the clock reports the problem and carries on in memory
    assert clock.path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".drill-clock-01_nt_xent.json"]
    assert clock.scores["nt_xent_loss"]["passed"] == 3


def test_survives_a_kernel_restart(tmp_path):
    """Two separate Python processes, as a kernel restart gives: the second carries on."""
    first = f"""
        import grader.clock as gc
        from grader.report import CheckResult, Report
        c = gc.start("01_nt_xent", {str(tmp_path)!r}, now=lambda: {T0 + 25 * 60!r})
        c.record(Report("nt_xent_loss", [CheckResult("a", True), CheckResult("b", False)]))
    """
    second = f"""
        import grader.clock as gc
        c = gc.start("01_nt_xent", {str(tmp_path)!r}, now=lambda: {T0 + 52 * 60!r})
        print("SCORE", c.scores["nt_xent_loss"]["passed"], c.scores["nt_xent_loss"]["total"])
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(gc.ENV, None)
    outputs = []
    for code in (first, second):
        run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout)
    # The first process started the clock at T0 + 25 min; the second resumed it 27 min later.
    assert "resumed" not in outputs[0]
    assert "resumed: this drill started 27:00 ago" in outputs[1]
    assert "Block 3/4, implement" in outputs[1] and "23:00 left in it" in outputs[1]
    assert "SCORE 1 2" in outputs[1]


def _saved(tmp_path, **state):
    path = tmp_path / ".drill-clock-01_nt_xent.json"
    path.write_text(json.dumps(state, indent=1))
    return path


def test_a_half_written_state_file_keeps_its_start_time(tmp_path):
    path = _saved(tmp_path, started=T0, drill="01_nt_xent", format=1, marks={"implement": 600},
                  scores={"nt_xent_loss": {"passed": 16, "total": 16}})
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # a crash half-way through a non-atomic write
    now = FakeTime(T0 + 30 * 60)
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    assert clock.resumed and clock.started == T0
    assert "damaged" in clock.note
    assert clock.status().block == "implement"
    json.loads(path.read_text())  # and the file is whole again


@pytest.mark.parametrize("content", [b"", b"\x00\x00\x00\x00", b"{not json", b"[1, 2, 3]",
                                     b'{"started": "yesterday"}', b"\xff\xfe garbage"])
def test_a_ruined_state_file_starts_afresh(tmp_path, content):
    path = tmp_path / ".drill-clock-01_nt_xent.json"
    path.write_bytes(content)
    clock = gc.Clock("01_nt_xent", tmp_path, now=FakeTime())
    assert not clock.resumed and clock.started == T0 and clock.note
    assert json.loads(path.read_text())["started"] == T0


def test_scores_of_the_wrong_type_in_the_file_do_not_break_the_clock(tmp_path):
    _saved(tmp_path, started=T0, scores={"nt_xent_loss": {"passed": "lots", "runs": None,
                                                           "first": "x", "diagnosis": 3}})
    clock = gc.Clock("01_nt_xent", tmp_path, now=FakeTime(T0 + 600))
    clock.record(report())
    assert clock.scores["nt_xent_loss"]["runs"] == 1
    assert "3/4 checks, 1 run(s)" in str(clock.summary())


def test_a_start_time_in_the_future_is_not_trusted(tmp_path):
    _saved(tmp_path, started=T0 + 3600)
    clock = gc.Clock("01_nt_xent", tmp_path, now=FakeTime())
    assert not clock.resumed and clock.started == T0


def test_an_attempt_from_the_day_before_is_not_resumed(tmp_path):
    now = FakeTime()
    gc.Clock("01_nt_xent", tmp_path, now=now).record(report())
    now.advance(minutes=11 * 60)
    assert gc.Clock("01_nt_xent", tmp_path, now=now).resumed  # the same day: carry on
    now.advance(minutes=2 * 60)
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    assert not clock.resumed and clock.started == now.t and clock.scores == {}
    assert "13 hours ago" in clock.note


def test_reset_starts_the_hour_again_and_forgets_the_scores(tmp_path):
    now = FakeTime()
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    clock.record(report())
    clock.mark("implement")
    now.advance(minutes=70)
    status = clock.reset()
    assert status.block == "read" and status.left == 3600
    assert clock.scores == {} and clock.marks == {}
    again = gc.Clock("01_nt_xent", tmp_path, now=now)  # and the reset is what a restart sees
    assert again.started == now.t and again.scores == {}


def test_start_with_reset_discards_a_previous_attempt(tmp_path):
    now = FakeTime()
    gc.Clock("01_nt_xent", tmp_path, now=now).record(report())
    now.advance(minutes=200)
    clock = gc.start("01_nt_xent", tmp_path, now=now, reset=True)
    assert clock.started == now.t and clock.scores == {}


def test_summary_shows_time_per_block_against_the_schedule_scores_and_the_rubric(tmp_path):
    now = FakeTime()
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    now.advance(minutes=12)
    clock.mark("explain")
    now.advance(minutes=6)
    clock.mark("implement")
    now.advance(minutes=5)
    clock.record(report(todo=True))  # running the grader on the stub starts nothing
    now.advance(minutes=20)
    clock.record(report(passed=10, total=16))  # 43 min in: sanity-checking begins
    now.advance(minutes=9)
    clock.record(report(passed=16, total=16))
    now.advance(minutes=1)
    summary = clock.summary(rubric="3  flawless\n0  nothing works")
    spent = {" + ".join(g["blocks"]): (g["planned"], g["spent"]) for g in summary.data["blocks"]}
    assert spent == {"read": (900, 720), "explain": (300, 360), "implement": (1800, 1500),
                     "sanity-check": (600, 600)}
    text = str(summary)
    assert "53:00 used of 60:00" in text
    assert "nt_xent_loss" in text and "16/16 checks, 3 run(s); all passing at 52:00" in text
    assert "3  flawless" in text and "0  nothing works" in text
    assert summary.data["ceiling"] == 3
    assert "<table" in summary._repr_html_() and "flawless" in summary._repr_html_()


def test_summary_joins_blocks_the_learner_did_not_mark(tmp_path):
    now = FakeTime()
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    now.advance(minutes=47)
    clock.record(report(passed=1, total=4))
    now.advance(minutes=20)
    summary = clock.summary()
    blocks = [(" + ".join(g["blocks"]), g["spent"]) for g in summary.data["blocks"]]
    assert blocks == [("read + explain + implement", 47 * 60), ("sanity-check", 20 * 60)]
    assert "over by 7:00" in str(summary)
    assert gc.DEFAULT_RUBRIC.splitlines()[0] in str(summary)
    assert summary.data["ceiling"] == 1  # runs, but checks still fail


def test_passing_after_the_hour_caps_the_rubric_at_two(tmp_path):
    now = FakeTime()
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    now.advance(minutes=65)
    clock.record(report(passed=4, total=4))
    assert clock.summary().data["ceiling"] == 2


def test_grader_check_records_its_score_and_shows_the_status_outside_the_report(tmp_path, capsys):
    now = FakeTime()
    gc.start("01_nt_xent", tmp_path, now=now)
    now.advance(minutes=21)
    capsys.readouterr()

    def untouched_stub(z1, z2, temperature=0.5):
        raise NotImplementedError("implement `nt_xent_loss`")

    result = grader.check("nt_xent_loss", untouched_stub)
    out = capsys.readouterr().out
    assert "[clock]" in out and "implement" in out  # shown as a separate output
    assert "clock" not in str(result) and "clock" not in result._repr_html_()
    saved = json.loads((tmp_path / ".drill-clock-01_nt_xent.json").read_text())
    assert saved["scores"]["nt_xent_loss"]["runs"] == 1
    assert saved["scores"]["nt_xent_loss"]["total"] == len(result.results)


def test_switched_off_the_clock_writes_nothing_and_prints_no_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(gc.ENV, "off")
    clock = gc.start("01_nt_xent", tmp_path, now=FakeTime())
    gc.record(report())
    assert list(tmp_path.iterdir()) == []
    out = capsys.readouterr().out
    assert "off" in out and "left in" not in out
    assert "not measured" in str(clock.summary())


def test_marking_an_unknown_block_is_refused(tmp_path):
    clock = gc.Clock("01_nt_xent", tmp_path, now=FakeTime())
    with pytest.raises(ValueError, match="sanity-check"):
        clock.mark("lunch")


def _run(kc, code, *, allow_stdin):
    """Execute code in the kernel; return its outputs as (type, text) pairs."""
    outputs = []

    def keep(msg):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            outputs.append(("stream", content["text"]))
        elif kind in ("display_data", "execute_result"):
            outputs.append((kind, content["data"].get("text/plain", "")))
        elif kind == "error":
            outputs.append(("error", f"{content['ename']}: {content['evalue']}"))

    reply = kc.execute_interactive(code, allow_stdin=allow_stdin, output_hook=keep, timeout=120,
                                   stdin_hook=lambda msg: None)
    assert reply["content"]["status"] == "ok", outputs
    return outputs


def test_in_a_kernel_the_status_shows_for_a_person_not_for_nbval_and_survives_restart(tmp_path):
    """A front end (allow_stdin) sees the status after the report; nbclient/nbval do not, so the
    grader cell's committed output stays the same from run to run. Then a real kernel restart."""
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(gc.ENV, None)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env,
                              stderr=subprocess.DEVNULL)
    try:
        def start_cell(now):
            return (f"import grader, grader.clock\n"
                    f"clock = grader.clock.start('01_nt_xent', now=lambda: {now!r})\n"
                    "def nt_xent_loss(z1, z2, temperature=0.5):\n"
                    "    raise NotImplementedError\n")

        _run(kc, start_cell(T0), allow_stdin=True)
        _run(kc, f"clock.now = lambda: {T0 + 22 * 60!r}", allow_stdin=True)
        check = 'grader.check("nt_xent_loss", nt_xent_loss)'
        by_person = _run(kc, check, allow_stdin=True)
        by_runner = _run(kc, check, allow_stdin=False)
        assert [k for k, _ in by_person] == ["display_data", "execute_result"]
        assert "[clock]" in by_person[0][1] and "Block 3/4, implement" in by_person[0][1]
        assert [k for k, _ in by_runner] == ["execute_result"]
        assert by_runner[0][1] == by_person[1][1]  # the report itself is the same either way
        assert "clock" not in by_runner[0][1]

        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        after = _run(kc, start_cell(T0 + 22 * 60), allow_stdin=True)
        text = "".join(t for _, t in after)
        assert "resumed: this drill started 22:00 ago" in text
        runs = _run(kc, 'print(clock.scores["nt_xent_loss"]["runs"])', allow_stdin=True)
        assert runs == [("stream", "2\n")]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_the_status_follows_the_marks_not_the_plan(tmp_path):
    now = FakeTime()
    clock = gc.Clock("01_nt_xent", tmp_path, now=now)
    now.t = T0 + 2 * 60
    clock.mark("explain")  # early: the plan still says "read"
    assert clock.status().block == "explain" and "Block 2/4" in str(clock.status())
    now.t = T0 + 15 * 60 + 23  # every check passing at 15:23: the learner is sanity-checking
    clock.mark("implement")
    clock.record(report(passed=16))
    status = clock.status()
    assert status.block == "sanity-check", str(status)
    assert "Block 4/4" in str(status) and "explain" not in str(status)
    (tmp_path / "late").mkdir()
    late = gc.Clock("04_dino", tmp_path / "late", now=now)
    now.t += 30 * 60  # marked, but late: the line says where the plan is by now
    late.mark("explain")
    assert "The plan is at block 3/4, implement" in str(late.status()), str(late.status())
