"""Shared fixtures: a tiny suite for fast end-to-end runs, and one real run of the default suite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from support import QUICK_CI, REAL_CI, SLOW_PLUGIN, TINY_SUITE, bench, load

os.environ.setdefault("DEMEMO_PROGRESS", "0")
# plugins' own tuning files (``dememo-bench tune``) go to a directory of this session's, never the user's
os.environ["DEMEMO_TUNING_DIR"] = tempfile.mkdtemp(prefix="dememo-tuning-")
# end-to-end runs stay in one process (tests/core/engine/test_jobs.py runs worker processes): a worker's start
# (a fresh interpreter importing torch) would cost more than most test runs
os.environ.setdefault("DEMEMO_JOBS", "1")
# in-process tests train with the harness's thread count (one, or $DEMEMO_THREADS) and allocator settings, as the
# runs they check do
from dememo.engine.devices import prepare_process  # noqa: E402

prepare_process()
# end-to-end runs leave the plots out of leaderboard.html (1-3 s a run); tests/core/board/test_report.py and
# tests/core/board/test_leaderboard_html.py render them
os.environ.setdefault("DEMEMO_HTML_PLOTS", "0")


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SUITE)
    return path


@pytest.fixture
def slow_plugin_env(tmp_path: Path) -> dict[str, str]:
    """An installed third-party plugin (module + dist-info with an entry point) whose metric sleeps, so a
    run lasts long enough to be interrupted in the middle."""
    site = tmp_path / "site"
    (site / "dememo_sleepy-0.1.dist-info").mkdir(parents=True)
    (site / "dememo_sleepy.py").write_text(SLOW_PLUGIN)
    (site / "dememo_sleepy-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: dememo-sleepy\nVersion: 0.1\n")
    (site / "dememo_sleepy-0.1.dist-info" / "entry_points.txt").write_text("[dememo]\nsleepy = dememo_sleepy\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


@pytest.fixture(scope="session")
def quick_results(tmp_path_factory) -> dict:
    """The default suite as a user runs it, narrowed to keep CI short: one seed, and the plugins whose claims
    the tests assert (the learner-side attacks and the expensive poisoners have their own behaviour tests;
    the full run's figures are in the README)."""
    base = tmp_path_factory.mktemp("quick")
    narrow = [f"--{family}={name}" for family, names in QUICK_CI.items() for name in names]
    proc = bench("--all", "--seeds", "1", *narrow, "--out", str(base / "out"), "--cache-dir", str(base / "cache"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load(base / "out")


@pytest.fixture(scope="session")
def real_results(tmp_path_factory) -> dict:
    """``real`` (mnist-10k on LeNet-5) as a user runs it, seed 0, narrowed to what its claims tests assert:
    the unlearnability and unlearning tracks, class-wise EM (sample-wise EM, 3 min of poison generation,
    hides nothing on real digits; see the README; class-wise EM is then labelled "em") and the plugins named in
    ``REAL_CI``. The suite's own file and tuning log, with only those two edits."""
    from importlib import resources

    base = tmp_path_factory.mktemp("real")
    shipped = resources.files("dememo.suites")
    text = shipped.joinpath("real.toml").read_text()
    edits = {'tracks = ["unlearnability", "unlearning", "interplay"]': 'tracks = ["unlearnability", "unlearning"]',
             '[[variants.poisoner.em]]\nmode = "sample"\n[[variants.poisoner.em]]\nmode = "class"\n':
             '[[variants.poisoner.em]]\nmode = "class"\n'}
    for old, new in edits.items():
        assert text.count(old) == 1, f"real.toml no longer holds {old!r}: update the real_results fixture"
        text = text.replace(old, new)
    (base / "real.toml").write_text(text)
    (base / "real.tuning.json").write_text(shipped.joinpath("real.tuning.json").read_text())
    narrow = [f"--{family}={name}" for family, names in REAL_CI.items() for name in names]
    proc = bench("--all", "--suite", str(base / "real.toml"), "--seeds", "1", *narrow, "--out", str(base / "out"),
                 "--cache-dir", str(base / "cache"), "--quiet", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load(base / "out")
