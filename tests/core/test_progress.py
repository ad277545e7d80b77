"""The run's progress bar: weighted by estimated cost, saying what runs now, alive while a stage runs."""

from __future__ import annotations

import time

from dememo.progress import Progress, RunBar, duration


def test_the_bar_advances_by_cost_not_by_count(capsys):
    bar = RunBar(Progress(show=True), 2, {"cheap": 1.0, "dear": 99.0}, heartbeat=0)
    bar.finished("cheap")
    assert bar.bar.n == 1.0 and bar.bar.total == 100.0
    bar.doing("digits: scrub @none")
    bar.stage("unlearn", True)
    bar.stage("train", True)  # a training the unlearner asked for: the innermost stage is shown
    bar.stage("train", False)
    bar.finished("dear")
    bar.close()
    err = capsys.readouterr().err
    assert "1/2 cells" in err and "2/2 cells" in err and "digits: scrub @none · unlearn 0 s" in err
    assert "100%" in err


def test_without_weights_it_counts_cells(capsys):
    bar = RunBar(Progress(show=True), 3, None, heartbeat=0)
    bar.finished("a")
    assert bar.bar.n == 1 and bar.bar.total == 3
    bar.close()


def test_a_heartbeat_redraws_a_long_stage(capsys):
    bar = RunBar(Progress(show=True), 1, {"a": 5.0}, heartbeat=0.2)
    bar.doing("mnist-10k: em @none")
    capsys.readouterr()
    time.sleep(1.3)
    drawn = capsys.readouterr().err
    bar.close()
    assert drawn.count("mnist-10k: em @none") >= 3 and "1 s" in drawn  # its clock moved while nothing finished


def test_a_hidden_bar_draws_nothing(capsys):
    bar = RunBar(Progress(show=False), 1, {"a": 1.0})
    bar.doing("x")
    bar.finished("a")
    bar.close()
    assert capsys.readouterr().err == ""


def test_durations_read_as_people_say_them():
    assert [duration(s) for s in (4, 89, 150, 720, 7200)] == ["4 s", "89 s", "2.5 min", "12 min", "2.0 h"]
