"""A plugin author's path, for every family, as CONTRIBUTING walks it: ``dememo-bench new FAMILY NAME`` writes a
distribution; pip installs it into a directory of its own; its own tests pass (the contract kit included,
registration through the entry point too); ``dememo-bench tune`` writes an unlearner's tuning file that its
smoke run then uses; ``--smoke`` gives its first rows beside the references; ``submit`` bundles them,
``verify --rerun 1`` passes; and ``leaderboard build`` puts every entry on one board: the unlearner's and the
poisoner's rows, the attack's rows under it, the metric's column on rows of other entries, and a dataset's or
an architecture's own tables on a board of their suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import cli, pip_install, site_env

pytestmark = pytest.mark.slow

FAMILIES = ("poisoner", "unlearner", "attack", "metric", "dataset", "architecture")
ROWS = ("poisoner", "unlearner", "attack", "metric")  # the families a run names with a filter


def run(env: dict[str, str], *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", "from dememo.cli import entry; entry()", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)
    assert proc.returncode == 0, f"dememo-bench {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def authored(tmp_path_factory):
    """Six new distributions, written by ``dememo-bench new``, installed with pip into one directory."""
    base = tmp_path_factory.mktemp("authors")
    site = base / "site"
    for family in FAMILIES:
        made = cli("new", family, f"my-{family}", "--dir", str(base))
        assert made.returncode == 0, made.stderr
        pip_install(base / f"dememo-plugin-my-{family}", site)
    return base, site_env(site, DEMEMO_CACHE_DIR=str(base / "cache"), DEMEMO_TUNING_DIR=str(base / "tuning"))


@pytest.mark.parametrize("family", FAMILIES)
def test_its_own_tests_pass_installed(authored, family):
    base, env = authored
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=base / f"dememo-plugin-my-{family}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" not in summary and "failed" not in summary, summary  # registration ran


def test_tune_smoke_submit_verify_and_one_board_for_every_family(authored):
    base, env = authored
    entries = base / "entries"
    entries.mkdir()
    # the unlearner's own tuning file: its smoke rows then say "tuned"
    tuned = run(env, "tune", "--suite", "smoke", "--unlearner", "my-unlearner", "--seeds", "1", "--trials", "2",
                "--quiet", "--out", str(base / "tuning-log"), cwd=base)
    assert "later runs of suite 'smoke' use these values for my-unlearner" in tuned.stderr
    results = {}
    for family in ROWS:
        out = base / "runs" / family
        smoke = run(env, "--smoke", f"--{family}", f"my-{family}", "--quiet", "--out", str(out), cwd=base)
        assert f"For numbers to report: dememo-bench --all --{family} my-{family}" in smoke.stderr
        results[family] = json.loads((out / "results.json").read_text())
        run(env, "submit", "--results", str(out), "--plugin", f"dememo-plugin-my-{family}", "--name", f"my {family}",
            "--out", str(entries / f"{family}.json"), cwd=base)
    # the reference rows alone, as the first party's entry made before the metric existed
    before = {**env, "DEMEMO_BLOCK_PLUGINS": "dememo-plugin-my-metric"}
    run(before, "--smoke", "--quiet", "--out", str(base / "runs" / "references"), cwd=base)
    run(env, "submit", "--results", str(base / "runs" / "references"), "--plugin", "dememo", "--name", "references",
        "--out", str(entries / "dememo.json"), cwd=base)

    ours = [c for c in results["unlearner"]["cells"] if c["unlearner"] == "my-unlearner"]
    assert ours and all(c["status"] == "ok" and c["selection"]["source"] == "tuned" for c in ours)
    assert {(c["track"], c["forget"]) for c in ours} == {("unlearning", "random-10%"), ("unlearning", "class-0"),
                                                         ("interplay", "owner-50% (poisoned, forgotten)")}
    assert {c["attack"] for c in results["attack"]["cells"]} == {"none", "my-attack"}
    assert all("my_metric_conf" in c["metrics"] for c in results["metric"]["cells"] if c["track"] == "unlearning")

    for name in (*ROWS, "dememo"):
        verified = run(env, "verify", str(entries / f"{name}.json"), "--rerun", "1", cwd=base)
        assert "FAIL" not in verified.stdout, verified.stdout
    built = run(env, "leaderboard", "build", str(entries), "--out", str(base / "board"), cwd=base)
    assert "refused" not in built.stdout, built.stdout
    board = json.loads((base / "board" / "results.json").read_text())
    by_entry = {e["name"]: e for e in board["entries"]}
    assert set(by_entry) == {"my poisoner", "my unlearner", "my attack", "my metric", "references"}
    assert by_entry["my metric"]["columns"] == ["my_metric_conf"] and by_entry["my metric"]["cells"] == 0
    cells = board["cells"]
    assert {"my-unlearner", "my-poisoner"} <= {c["method"] for c in cells}
    assert any(c["attack"] == "my-attack" for c in cells)
    references = [c for c in cells if c["track"] == "unlearning" and c["method"] in ("original", "retrain")
                  and c["attack"] == "none"]
    assert references and all(c["entry"] == "references" and "my_metric_conf" in c["metrics"] for c in references)
    metric = {(c["method"], c["forget"]): c["metrics"]["my_metric_conf"] for c in references}
    assert metric[("retrain", "class-0")] < 0.2 < 0.9 < metric[("original", "class-0")]  # the class it never saw
    assert board["columns"]["unlearning"]["my_metric_conf"]["contributed"] == "my metric"  # shown, not ranked
    table = (base / "board" / "leaderboard.md").read_text()
    assert "my-metric conf" in table and "my-attack" in table and "| my metric " in table


@pytest.mark.parametrize("family", ["dataset", "architecture"])
def test_a_dataset_or_architecture_owns_the_tables_of_its_suite(authored, family):
    base, env = authored
    root = base / f"dememo-plugin-my-{family}"
    out = base / "runs" / family
    run(env, "--smoke", "--suite", "smoke.toml", "--quiet", "--out", str(out), cwd=root)
    entries = base / f"entries-{family}"
    entries.mkdir()
    run(env, "submit", "--results", str(out), "--plugin", f"dememo-plugin-my-{family}", "--name", f"my {family}",
        "--out", str(entries / "entry.json"), cwd=root)
    verified = run(env, "verify", str(entries / "entry.json"), "--rerun", "1", cwd=root)
    assert "FAIL" not in verified.stdout
    run(env, "leaderboard", "build", str(entries), "--out", str(base / f"board-{family}"), cwd=root)
    board = json.loads((base / f"board-{family}" / "results.json").read_text())
    ran = json.loads((out / "results.json").read_text())
    assert board["entries"][0]["cells"] == len(ran["cells"]) > 0  # every row of its tables, references included
    assert {c["method"] for c in board["cells"]} >= {"none", "original", "retrain"}
    assert all(c[family].startswith("my-") for c in board["cells"])
    # beside the first party's entry on the same suite, the rows its reference plugins define are the first
    # party's (the table owner's copies are context): both entries stand, neither is held back
    run(env, "submit", "--results", str(out), "--plugin", "dememo", "--name", "references", "--out",
        str(entries / "dememo.json"), cwd=root)
    built = run(env, "leaderboard", "build", str(entries), "--out", str(base / f"board-{family}-2"), cwd=root)
    assert "refused" not in built.stdout, built.stdout
    both = json.loads((base / f"board-{family}-2" / "results.json").read_text())
    assert {e["name"] for e in both["entries"]} == {f"my {family}", "references"}
    assert {c["entry"] for c in both["cells"] if c["method"] in ("none", "original", "retrain")} == {"references"}
