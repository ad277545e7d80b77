"""The template plugin (plugins/template) is a real third-party distribution: it builds with pip, its entry
point is found, and ``dememo-bench --all`` runs its unlearner without any change to core."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from support import ROOT, pip_install, site_env

#: the slow group (`python -m pytest -m slow`, run by .ci/run after the default fast group)
pytestmark = pytest.mark.slow

TEMPLATE = ROOT / "plugins" / "template"

TINY_SUITE = """
name = "template-tiny"
description = "digits, 5 epochs, unlearning track only: runs a third-party unlearner in seconds"
seeds = 1
tracks = ["unlearning"]

[[datasets]]
name = "digits"
architecture = "mlp"
recipe = { epochs = 5, batch_size = 128, lr = 0.05 }

[[forget]]
kind = "random"
fraction = 0.1

[references]
unlearner = ["original", "retrain"]
attack = ["none"]
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The template installed with pip into a directory of its own, as `pip install` would for a user.

    pip builds a local project in place (build/, *.egg-info), so it builds a copy: the checkout stays
    clean and two test runs never share a build directory.
    """
    base = tmp_path_factory.mktemp("template")
    source = base / "dememo-plugin-example"
    junk = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")
    shutil.copytree(TEMPLATE, source, ignore=junk)
    pip_install(source, base / "site")
    return base / "site"


def bench_with(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``dememo-bench`` in a fresh process that sees the installed template (plugin load/block switches cleared)."""
    return subprocess.run([sys.executable, "-c", "from dememo.cli import entry; entry()", *args],
                          capture_output=True, text=True, timeout=300, env=site_env(site), cwd=cwd)


def test_template_pyproject_declares_the_dememo_entry_point_group():
    meta = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())
    assert meta["build-system"]["build-backend"] == "setuptools.build_meta"
    assert meta["project"]["name"] == "dememo-plugin-example"
    assert "dememo" in meta["project"]["dependencies"]
    assert meta["project"]["entry-points"]["dememo"] == {"example": "dememo_plugin_example"}


def test_installed_template_is_listed_with_its_distribution(site, tmp_path):
    proc = bench_with(site, "--list", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    listing = json.loads(proc.stdout)
    assert listing["load_failures"] == []
    entry = {(p["family"], p["name"]): p for p in listing["plugins"]}[("unlearner", "example-amnesiac")]
    assert entry["distribution"] == "dememo-plugin-example"
    assert entry["entry_point"] == "example" and entry["version"] == "1" and entry["summary"]


def test_all_narrowed_to_the_template_runs_its_unlearner_against_the_references(site, tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    out = tmp_path / "out"
    proc = bench_with(site, "--all", "--unlearner", "example-amnesiac", "--attack", "none", "--seeds", "1",
                      "--metric", "unlearning-accuracy", "--metric", "avg-gap",  # the metrics' own tests cover the rest
                      "--suite", str(suite), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert {c["unlearner"] for c in cells} == {"example-amnesiac", "original", "retrain"}
    ours = [c for c in cells if c["unlearner"] == "example-amnesiac"]
    assert ours and all(c["status"] == "ok" for c in ours), [c["error"] for c in ours]
    assert all(0 <= c["metrics"]["forget_acc"] <= 1 for c in ours)
    assert "example-amnesiac" in proc.stdout  # a row of the printed leaderboard
