"""Shared fixtures: a tiny suite for fast end-to-end runs, and one real run of the default suite."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("DEMEMO_PROGRESS", "0")
# end-to-end runs leave the plots out of leaderboard.html (1-3 s a run); tests/test_report.py and
# tests/test_leaderboard_html.py render them
os.environ.setdefault("DEMEMO_HTML_PLOTS", "0")

TINY_SUITE = """
name = "tiny"
description = "digits with a 5-epoch recipe: end-to-end tests in seconds"
seeds = 1
tracks = ["unlearnability", "unlearning"]

[[datasets]]
name = "digits"
architecture = "mlp"
recipe = { epochs = 5, batch_size = 128, lr = 0.05 }
plugin_params.unlearner.gradient-ascent = { lr = 0.05 }

[[forget]]
kind = "random"
fraction = 0.1

[references]
poisoner = ["none"]
unlearner = ["original", "retrain"]
attack = ["none"]

[headline]
unlearnability = ["test_acc"]
unlearning = ["forget_acc"]

[params.poisoner.em]
max_rounds = 2
pgd_steps = 3
train_steps = 5

[[variants.poisoner.random-noise]]
mode = "sample"
[[variants.poisoner.random-noise]]
mode = "class"

[[variants.attack.weight-noise]]
sigma = 0.02

# every installed plugin runs in the tiny suite: keep the expensive ones to a few steps
[grid]
train_attack_poisoners = ["none"]
model_attacks_after_train_attacks = false
# the shadow-model membership tests replay every unlearner several times per cell: they have their own
# end-to-end tests (test_many_model_metrics.py), so the tiny suite leaves them out
metric_forget = { u-lira = [], forget-quality = [], certified-learnability = [] }
# depth sweeps weight recovery per model: its own end-to-end test is in test_depth.py
metric_datasets = { depth = [] }

# the interplay track has its own end-to-end tests (test_interplay.py); test_cli turns it on
[interplay]
share = 0.3
poisoners = ["none", "random-noise(mode=class)"]
unlearners = ["finetune"]

[params.poisoner.tap]
steps = 3
[params.poisoner.hypo]
steps = 3
[params.poisoner.rem]
max_rounds = 1
train_steps = 2
pgd_steps = 2
samples = 1
adv_steps = 1
[params.poisoner.sep]
checkpoints = 2
steps = 2
[params.attack.adversarial-training]
steps = 2
[params.attack.ueraser]
repeats = 2
[params.attack.orthogonal-projection]
linear_steps = 20
[params.attack.dfr]
epochs = 5
[params.attack.weight-recovery]
epochs = 3
[params.metric.certified-learnability]
draws = 50
samples = 100
[params.metric.sal]
subsample = 64
epochs = 1
[params.metric.ud]
subsample = 64
epochs = 1
[params.metric.memorization]
models = 2
[params.metric.residual-knowledge]
taus = [0.0, 0.03137254901960784]
gauss_draws = 4
fgsm_draws = 2
pgd_draws = 1
pgd_steps = 2
[params.metric.loss-curvature]
draws = 1
[params.metric.holdout-retraining]
finetune_epochs = 2
[params.metric.depth]
etas = [1.0, 4.0]
sigmas = [0.01, 0.1]
draws = 4
epochs = 3
[params.metric.u-lira]
shadows = 6
[params.metric.forget-quality]
models = 3
"""


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SUITE)
    return path


SLOW_PLUGIN = '''
import time
from typing import ClassVar
import attrs
import dememo

@attrs.define
class Sleepy(dememo.Metric):
    """Sleeps, so that tests can interrupt a run in the middle."""
    name: ClassVar[str] = "sleepy"
    columns: ClassVar[dict] = {"slept": dememo.Column("slept", "info", "seconds slept", unit="seconds")}
    seconds: float = 0.15

    def compute(self, ev, ctx):
        time.sleep(self.seconds)
        return {"slept": self.seconds}

@dememo.hookimpl
def register_metrics(register):
    register(Sleepy)
'''


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


def bench(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``dememo-bench`` as a user would, in a fresh process."""
    from qa import faults

    return faults.bench(list(args), env, timeout)


def load(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


QUICK_CI = {
    "poisoner": ["none", "random-noise", "em", "tap"],
    "unlearner": ["original", "retrain", "finetune", "gradient-ascent", "neggrad-plus"],
    "attack": ["none", "weight-noise", "weight-recovery"],
    "metric": ["clean-accuracy", "peak-accuracy", "unlearning-accuracy", "mia-efficacy", "avg-gap"],
}


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
