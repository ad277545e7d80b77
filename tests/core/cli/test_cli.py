"""End-to-end behaviour of ``dememo-bench`` as a user meets it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import bench, cli, load

REQUIRED_CELL_KEYS = {"track", "dataset", "architecture", "poisoner", "train_attack", "unlearner", "forget", "attack",
                      "seed", "params", "key", "status", "error", "metrics", "timings"}


def run_tiny(tiny_suite: Path, tmp_path: Path, *extra: str, cache: str = "cache", out: str = "out"):
    return bench("--all", "--suite", str(tiny_suite), "--out", str(tmp_path / out), "--cache-dir", str(tmp_path / cache),
                 "--quiet", *extra)


def by_key(results: dict) -> dict[str, dict]:
    return {c["key"]: c for c in results["cells"]}


def test_list_shows_every_family_with_its_distribution():
    proc = bench("--list")
    assert proc.returncode == 0
    for family in ("datasets", "architectures", "poisoners", "unlearners", "attacks", "metrics"):
        assert f"{family} (" in proc.stdout
    assert "em " in proc.stdout and "dememo" in proc.stdout
    listing = json.loads(bench("--list", "--format", "json").stdout)
    names = {(p["family"], p["name"]): p for p in listing["plugins"]}
    assert names[("poisoner", "em")]["distribution"] == "dememo"
    assert names[("unlearner", "retrain")]["summary"]
    assert listing["load_failures"] == []


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One tiny run with every track, shared by the tests that read it or re-run against its cache."""
    from support import TINY_SUITE

    tmp = tmp_path_factory.mktemp("cli")
    suite = tmp / "tiny.toml"
    suite.write_text(TINY_SUITE.replace('tracks = ["unlearnability", "unlearning"]',
                                        'tracks = ["unlearnability", "unlearning", "interplay"]'))
    proc = run_tiny(suite, tmp, out="first")
    assert proc.returncode == 0, proc.stderr
    return suite, tmp, proc


def test_all_writes_results_and_leaderboards(first_run):
    _, tmp, proc = first_run
    out = tmp / "first"
    results = load(out)
    assert results["schema"] == "dememo.results/1"
    assert {"suite", "environment", "plugins", "cells", "columns"} <= set(results)
    assert results["environment"]["torch"] and results["environment"]["dememo"]
    tracks = {c["track"] for c in results["cells"]}
    assert tracks == {"unlearnability", "unlearning", "interplay"}
    for cell in results["cells"]:
        assert REQUIRED_CELL_KEYS <= set(cell)
        assert cell["status"] == "ok", cell["error"]
        for value in cell["metrics"].values():
            assert value is None or isinstance(value, float)
    # one table per track and dataset in the terminal and in Markdown; CSV in long format
    assert "Unlearnability — digits" in proc.stdout and "Unlearning — digits" in proc.stdout
    assert "Interplay — digits / mlp, forget set owner-30% (poisoned, forgotten)" in proc.stdout
    md = (out / "leaderboard.md").read_text()
    assert "### Unlearning — digits / mlp, forget set random-10%" in md
    csv_text = (out / "leaderboard.csv").read_text()
    assert csv_text.splitlines()[0].startswith("track,dataset,forget,method,attack,column")
    assert len(list((out / "cells").glob("*.json"))) == len(results["cells"])


def test_second_run_is_served_from_cache_with_identical_numbers(first_run):
    # (speed is measured in benchmarks/bench_quick.py, not asserted here)
    suite, tmp, _ = first_run
    proc = run_tiny(suite, tmp, out="second")
    assert proc.returncode == 0
    assert ", 0 stages computed here" in proc.stderr
    first, second = by_key(load(tmp / "first")), by_key(load(tmp / "second"))
    assert first.keys() == second.keys()
    for key, cell in second.items():
        assert cell["metrics"] == first[key]["metrics"]
        assert all(t["cached"] for stage, t in cell["timings"].items() if stage != "metrics"), cell["timings"]


def test_set_recomputes_only_what_depends_on_the_parameter(first_run):
    suite, tmp, _ = first_run
    proc = run_tiny(suite, tmp, "--set", "finetune.epochs=2", out="third")
    assert proc.returncode == 0, proc.stderr
    for cell in load(tmp / "third")["cells"]:
        timings = cell["timings"]
        assert timings["train"]["cached"], "the original model does not depend on finetune"
        if cell["unlearner"] and cell["unlearner"].startswith("finetune"):
            assert cell["unlearner"] == "finetune(epochs=2)"
            assert not timings["unlearn"]["cached"] or cell["attack"] != "none"
        elif cell["track"] == "unlearning" and cell["unlearner"] != "rum":
            # rum composes other unlearners: only those it names (Unlearner.called()) are in its key; it is
            # left out of this check, which is about plugins that do not compose others
            assert timings["unlearn"]["cached"]


def test_unknown_plugin_is_a_one_line_error_before_any_work(tmp_path):
    proc = cli("--all", "--poisoner", "emm", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown poisoner 'emm'" in proc.stderr and "did you mean 'em'" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("finetune.lr=abc", "@ $.finetune.lr"),
        ("finetune.lrr=0.1", "has no parameter 'lrr' (did you mean 'lr'?)"),
        ("nosuchplugin.x=1", "unknown plugin 'nosuchplugin'"),
        ("finetune", "expects PLUGIN.PARAM=VALUE"),
        ("recipe.epochs=-1", "recipe"),
    ],
)
def test_bad_set_value_is_a_one_line_error_before_any_work(tmp_path, setting, expected):
    proc = cli("--all", "--set", setting, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"))
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert not (tmp_path / "out").exists()


def test_nothing_to_run_and_bad_suite_are_user_errors(tmp_path):
    assert cli().returncode == 2
    proc = cli("--all", "--suite", "nosuch")
    assert proc.returncode == 2 and "unknown suite 'nosuch'" in proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nseeds = "three"\n[[datasets]]\nname = "digits"\narchitecture = "mlp"\n')
    proc = cli("--all", "--suite", str(bad))
    assert proc.returncode == 2 and "$.seeds" in proc.stderr


def _start(tiny_suite: Path, tmp_path: Path, env: dict[str, str]) -> subprocess.Popen:
    args = [sys.executable, "-c", "from dememo.cli import entry; entry()", "--all", "--suite", str(tiny_suite),
            "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    # a terminal delivers Ctrl-C with SIGINT at its default; a background CI shell starts children with
    # SIGINT ignored, so restore the default as a terminal would
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "DEMEMO_PROGRESS": "0", **env},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_cells(tmp_path: Path, proc: subprocess.Popen, count: int) -> None:
    cells_dir = tmp_path / "out" / "cells"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cells_dir.glob("*.json"))) < count:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.02)


# a SIGKILL mid-run and the resume that follows are tested as chaos, many kills at random moments, in
# tests/system/test_chaos.py


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_saves_finished_cells_and_says_how_to_resume(tiny_suite, tmp_path, slow_plugin_env, sig):
    proc = _start(tiny_suite, tmp_path, slow_plugin_env)
    _wait_for_cells(tmp_path, proc, 3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Run the same command again to resume" in err
    assert "Traceback" not in err
    assert 3 <= len(load(tmp_path / "out")["cells"]) < 18


def test_version_and_the_subcommands_in_help():
    from dememo import __version__

    assert bench("--version").stdout.strip() == f"dememo {__version__}"
    text = bench("--help").stdout
    for name in ("plan", "suite", "tune", "report", "submit", "verify", "leaderboard"):
        assert f"\n  {name} " in text, name


def test_list_fits_100_columns_and_its_json_carries_parameters():
    listing = cli("--list", env={"COLUMNS": "100"}).stdout.splitlines()
    assert max(map(len, listing)) <= 100 and any(line.endswith("…") for line in listing)
    plugins = {(p["family"], p["name"]): p for p in json.loads(cli("--list", "--format", "json").stdout)["plugins"]}
    params = {p["name"]: p for p in plugins[("unlearner", "scrub")]["params"]}
    assert params["lr"] == {"name": "lr", "type": "float", "default": 0.0005}
    assert all({"name", "type"} <= set(p) and ("default" in p or p.get("required")) for info in plugins.values()
               for p in info["params"])


def test_plan_shows_the_run_and_computes_nothing(tiny_suite, tmp_path):
    proc = cli("plan", "--suite", str(tiny_suite), "--cache-dir", str(tmp_path / "cache"), "--unlearner", "finetune",
               "--attack", "none")
    assert proc.returncode == 0, proc.stderr
    assert "track" in proc.stdout and "to run" in proc.stdout and "estimated compute" in proc.stdout
    assert not any((tmp_path / "cache").glob("objects/*/*.json"))  # nothing computed, nothing stored
    data = json.loads(cli("plan", "--suite", str(tiny_suite), "--cache-dir", str(tmp_path / "cache"), "--unlearner",
                          "finetune", "--attack", "none", "--format", "json").stdout)
    assert data["cached"] == 0 and data["to_run"] == data["cells"] > 0 and data["estimate"]["compute_seconds"] > 0
    assert {g["track"] for g in data["groups"]} == {"unlearning"}
    dry = cli("--all", "--dry-run", "--suite", str(tiny_suite), "--cache-dir", str(tmp_path / "cache"), "--out",
              str(tmp_path / "out"), "--unlearner", "finetune", "--attack", "none")
    assert dry.returncode == 0 and "estimated compute" in dry.stdout and not (tmp_path / "out").exists()


def test_a_run_announces_its_plan_and_what_is_left(first_run):
    _, _, proc = first_run
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("dememo-bench: suite 'tiny': ") and "cells (unlearnability" in lines[0]
    assert any("cells to run; estimated compute" in line for line in lines)
    assert "of stage compute, estimated" in proc.stderr


def test_suite_export_copies_the_suite_and_its_tuning_file(tmp_path):
    proc = cli("suite", "export", "quick", str(tmp_path / "mine"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mine" / "quick.toml").read_text() == (Path(__file__).parents[3] / "core" / "dememo" / "suites" /
                                                              "quick.toml").read_text()
    assert (tmp_path / "mine" / "quick.tuning.json").exists()
    from dememo.planning.suite import load_suite

    assert load_suite(str(tmp_path / "mine" / "quick.toml")).tuned is not None  # the copy finds its tuning file
    again = cli("suite", "export", "quick", str(tmp_path / "mine"))
    assert again.returncode == 2 and "exists; give another directory, or --force" in again.stderr
    assert cli("suite", "export", "QUICK", str(tmp_path / "x")).stderr.strip().endswith(
        "shipped suites: cifar10, cifar10-fast, quick, real, smoke")
    assert "quick" in cli("suite", "list").stdout
