"""What tests share besides fixtures (which stay in conftest.py): the tiny suite, a slow third-party plugin
for interruption tests, and running ``dememo-bench`` in a fresh process as a user would.

Import it as ``from support import TINY_SUITE, bench, cli, load`` (``tests/`` is on ``pythonpath``); never import
``conftest``. ``support.unlearning`` measures an unlearner outside the runner; ``support.board`` builds
synthetic results for the leaderboard tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: the repository's root (tests move between folders; paths to README, leaderboard/, plugins/ start here)
ROOT = Path(__file__).resolve().parents[2]

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
# end-to-end tests (tests/plugins/metrics/test_u_lira.py, test_forget_quality.py), so the tiny suite leaves them out
metric_forget = { u-lira = [], forget-quality = [], certified-learnability = [] }
# depth sweeps weight recovery per model: its own end-to-end test is in tests/plugins/metrics/test_depth.py
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


def bench(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``dememo-bench`` as a user would, in a fresh process."""
    from qa import faults

    return faults.bench(list(args), env, timeout)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``dememo-bench`` in this process (``dememo.cli.main``): for error paths and short commands, which
    need no fresh interpreter importing torch (seconds each). ``env`` is set for the call only. Runs that
    compute cells, or test signals and process state, use :func:`bench`."""
    import io
    import os
    from contextlib import redirect_stderr, redirect_stdout
    from unittest import mock

    from dememo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["dememo-bench", *args], code, out.getvalue(), err.getvalue())


def load(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


#: the plugins of ``real`` whose directions tests/system/test_real_suite_claims.py asserts (seed 0)
REAL_CI = {
    "poisoner": ["none", "em"],
    "unlearner": ["original", "retrain", "bad-teacher"],
    "attack": ["none", "adversarial-training", "weight-recovery", "prototype-relearn"],
    "metric": ["clean-accuracy", "unlearning-accuracy", "depth"],
}

QUICK_CI = {
    "poisoner": ["none", "random-noise", "em", "tap"],
    "unlearner": ["original", "retrain", "finetune", "gradient-ascent", "neggrad-plus"],
    "attack": ["none", "weight-noise", "weight-recovery"],
    "metric": ["clean-accuracy", "peak-accuracy", "unlearning-accuracy", "mia-efficacy", "avg-gap"],
}


def pip_install(source: Path, site: Path) -> None:
    """Install the distribution in ``source`` into the directory ``site`` with pip, offline and without its
    dependencies (dememo is installed already), as a user's ``pip install`` would put it on their path."""
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "--quiet", "--target", str(site), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def site_env(site: Path, **extra: str) -> dict[str, str]:
    """This process's environment for a fresh ``dememo-bench`` that sees what is installed in ``site``: the plugin
    load/block switches cleared, no progress bars, and ``extra`` set."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEMEMO_LOAD_PLUGINS", "DEMEMO_BLOCK_PLUGINS")}
    env.update(PYTHONPATH=os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p),
               DEMEMO_PROGRESS="0", **extra)
    return env
