"""``--jobs N``: cells in N worker processes of one thread each, sharing the cache; ``--threads``.

The scheduler's invariants are properties (every cell handed out once; a worker keeps to its (dataset,
seed) group; no group is shared while another nobody works on is left); the end-to-end check is that a
two-worker run gives every number of the one-process run, cell for cell.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.engine.isolation import Schedule

from qa.faults import comparable
from support import bench, cli, load


def cells(groups: list[int]) -> list[SimpleNamespace]:
    """Fake planned cells: ``groups[g]`` cells of dataset ``d{g}``, interleaved as a planner might list them."""
    out = []
    for g, n in enumerate(groups):
        out += [SimpleNamespace(data=SimpleNamespace(name=f"d{g}"), seed=0, key=f"{g}-{i}") for i in range(n)]
    return out


@settings(max_examples=200, deadline=None)
@given(groups=st.lists(st.integers(1, 12), min_size=1, max_size=6), workers=st.integers(1, 5),
       order=st.lists(st.integers(0, 4), min_size=80, max_size=80))
def test_schedule_hands_out_every_cell_once_and_keeps_workers_to_their_group(groups, workers, order):
    schedule = Schedule(cells(groups))
    current: dict[int, str] = {}
    handed = []
    for turn in order + list(range(workers)) * 80:  # workers ask in an arbitrary order, then round robin
        w = turn % workers
        free = [g for (g, _), c in schedule.groups.items() if c and (g, 0) not in schedule.owner]
        left_in_mine = w in current and bool(schedule.groups[(current[w], 0)])
        cell = schedule.next(w)
        if cell is None:
            assert len(schedule) == 0
            continue
        group = cell.data.name
        if w in current and group != current[w]:
            assert not left_in_mine, "a worker leaves its group only once that group has nothing left"
        if group != current.get(w) and group in {g for o, g in current.items() if o != w}:
            assert not free, "a worker joins a group another works on only when no group is free"
        current[w] = group
        handed.append(cell.key)
    assert sorted(handed) == sorted(c.key for c in cells(groups))
    assert len(schedule) == 0 and schedule.next(0) is None


def test_schedule_spreads_workers_over_groups_before_sharing_one():
    schedule = Schedule(cells([5, 5, 5]))
    first = [schedule.next(w).data.name for w in range(3)]
    assert first == ["d0", "d1", "d2"]
    assert [schedule.next(0).key for _ in range(4)] == ["0-1", "0-2", "0-3", "0-4"]
    # worker 0's group is done: it shares the largest remaining one from its far end
    assert schedule.next(0).key == "1-4"


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--jobs", "0"], {}, "--jobs must be at least 1, got 0"),
    (["--threads", "-2"], {}, "--threads must be at least 1, got -2"),
    ([], {"DEMEMO_JOBS": "many"}, "$DEMEMO_JOBS must be a whole number of at least 1, got 'many'; fix or unset it"),
    ([], {"DEMEMO_THREADS": "0"}, "$DEMEMO_THREADS must be a whole number of at least 1, got '0'"),
    (["--executor", "ray", "--jobs", "2"], {}, "--jobs works with the local executor"),
])
def test_bad_worker_counts_are_one_line_errors(tiny_suite, tmp_path, args, env, message):
    proc = cli("--all", "--suite", str(tiny_suite), "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
               *args, env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.slow
def test_two_workers_give_the_numbers_of_one_process(tiny_suite, tmp_path):
    """The tiny suite (one dataset and seed: the second worker shares the group from its far end) with
    --jobs 2 and --jobs 1, separate caches: every cell's status, error and values are identical."""
    runs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        proc = bench("--all", "--suite", str(tiny_suite), "--jobs", jobs, "--out", str(out),
                     "--cache-dir", str(tmp_path / f"cache{jobs}"), "--quiet", timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[jobs] = load(out)
    assert "2 worker processes of 1 thread" in proc.stderr
    assert runs["2"]["environment"]["jobs"] == 2 and runs["2"]["environment"]["threads"] == 1
    one, two = comparable(runs["1"]), comparable(runs["2"])
    assert len(one) == len(two) > 90
    assert one == two


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_pool_keeps_finished_cells_and_leaves_no_worker(tiny_suite, tmp_path, slow_plugin_env, sig):
    args = [sys.executable, "-c", "from dememo.cli import entry; entry()", "--all", "--suite", str(tiny_suite),
            "--jobs", "2", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    # a terminal delivers Ctrl-C to the whole foreground process group: the workers get it too
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "DEMEMO_PROGRESS": "0", **slow_plugin_env},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    cells = tmp_path / "out" / "cells"
    deadline = time.time() + 180
    while len(list(cells.glob("*.json"))) < 3:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "no three cells finished in 180 s"
        time.sleep(0.05)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C: the whole group
    else:
        proc.send_signal(sig)  # a CI time limit or `kill`: the command's own process only
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Run the same command again to resume" in err and "Traceback" not in err
    planned = int(re.search(r"suite 'tiny': (\d+) cells", err).group(1))
    assert 3 <= len(load(tmp_path / "out")["cells"]) < planned
    def workers() -> list[str]:  # cell workers of the run's session (multiprocessing's helpers end on their own)
        ps = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(proc.pid)], capture_output=True, text=True).stdout
        return [line for line in ps.splitlines() if "spawn_main" in line]

    deadline = time.time() + 10
    while workers() and time.time() < deadline:
        time.sleep(0.1)
    assert not workers(), f"worker processes left running: {workers()}"


def test_a_warm_run_is_served_in_process_and_only_new_cells_go_to_workers(tiny_suite, tmp_path, monkeypatch):
    """A run with --jobs 2 whose cells are all cached starts no worker; widened by one unlearner, only that
    unlearner's cells go to the workers, and the served records equal a one-process run's."""
    from dememo.engine import session

    narrow = ["--poisoner", "random-noise", "--unlearner", "finetune", "--attack", "none", "--metric", "unlearning-accuracy"]
    args = ["--all", "--suite", str(tiny_suite), "--cache-dir", str(tmp_path / "cache"), "--quiet", *narrow]
    assert cli(*args, "--jobs", "1", "--out", str(tmp_path / "one")).returncode == 0
    sent: list[list] = []

    def in_workers(workers, cells, finished, bar):
        sent.append(cells)
        return iter(())  # nothing computed: what the test sends here must not be needed

    monkeypatch.setattr(session, "_in_workers", in_workers)
    proc = cli(*args, "--jobs", "2", "--out", str(tmp_path / "two"))
    assert proc.returncode == 0 and sent == [], proc.stderr
    assert comparable(load(tmp_path / "two")) == comparable(load(tmp_path / "one"))
    cli(*args, "--unlearner", "gradient-ascent", "--jobs", "2", "--out", str(tmp_path / "wider"))
    assert len(sent) == 1 and sent[0] and {c.unlearner.name for c in sent[0]} == {"gradient-ascent"}
