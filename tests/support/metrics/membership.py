"""Helpers shared by metrics/test_forget_quality.py, metrics/test_u_lira.py."""

from __future__ import annotations

import json

import pytest

from support import bench

SUITE = """
name = "membership"
seeds = 1
tracks = ["unlearning"]
[[datasets]]
name = "{dataset}"
architecture = "{arch}"
recipe = {{ epochs = {epochs}, batch_size = 128, lr = 0.05, momentum = 0.9, weight_decay = 5e-4, schedule = "onecycle" }}
[[forget]]
kind = "random"
fraction = 0.1
[references]
unlearner = ["original", "retrain"]
attack = ["none"]
[params.metric.u-lira]
shadows = 8
[params.metric.forget-quality]
models = 16
"""


#: the run's metrics by unlearner, once per test session (two test modules read it)
_RUN: dict[str, dict] = {}


@pytest.fixture(scope="module")
def membership(tmp_path_factory):
    if not _RUN:
        _RUN.update(_membership_run(tmp_path_factory))
    return _RUN


def _membership_run(tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("membership")
    suite = base / "membership.toml"
    suite.write_text(SUITE.format(dataset="digits", arch="mlp", epochs=30))
    proc = bench("--all", "--suite", str(suite), "--unlearner", "original", "--metric", "u-lira", "--metric",
                 "forget-quality", "--attack", "none", "--out", str(base / "out"), "--cache-dir", str(base / "cache"), "--quiet",
                 timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = json.loads((base / "out" / "results.json").read_text())["cells"]
    return {c["unlearner"]: c["metrics"] for c in cells}
