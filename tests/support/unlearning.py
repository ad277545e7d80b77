"""Measure an unlearner on the embedded data outside the runner: the numbers unlearning tests assert.

``setting(dataset, seed, kind)`` loads the quick suite's dataset with its recipe and architecture, draws the
forget set with the harness's own rule (``dememo.forget``) and trains the original and the retrained model
with standard training (cached per process). ``measure(unlearner, ...)`` runs the unlearner on a copy of
the original and returns UA/RA/TA, validation accuracy, MIA-efficacy (the ``mia-efficacy`` plugin) and the
average gap to the retrained model, plus wall-clock seconds of the unlearner and of retraining.
"""

from __future__ import annotations

import copy
import functools
import tempfile
import time
from pathlib import Path

import attrs
import torch
from torch import nn

from dememo import forget, plugins
from dememo.context import Context, seeded_generator, standard_training
from dememo.data import Splits, Task
from dememo.evaluation import Evaluation
from dememo.hashing import derive_seed
from dememo.params import build
from dememo.planning.planner import Planner
from dememo.planning.suite import ForgetSpec, load_suite
from dememo.training import accuracy

DATA_DIR = Path(tempfile.gettempdir()) / "dememo-test-data"


@attrs.frozen(eq=False)
class Setting:
    dataset: str
    seed: int
    splits: Splits
    task: Task
    config: object
    original: nn.Module
    retrained: nn.Module
    retrain_seconds: float

    def context(self, purpose: str = "unlearn") -> Context:
        """A fresh context seeded for ``purpose`` with the suite's recipe and architecture; ``scores(name)``
        runs the installed scorer on the training split (cached), ``plugin(family, label)`` builds a plugin
        with its defaults and the label's parameters."""
        return Context(device=torch.device("cpu"), seed=self.seed,
                       generator=seeded_generator(derive_seed(self.seed, purpose), torch.device("cpu")),
                       recipe=self.config.entry.recipe, architecture=self.config.architecture.obj,
                       input_shape=self.splits.shape, num_classes=self.splits.num_classes,
                       scorer=lambda name: train_scores(self.dataset, self.seed, name),
                       maker=lambda family, name, params: build(plugins.get_registry().get(family, name), params, name))

    def given(self, unlearner) -> Task:
        """The task as the harness passes it: an empty forget set for methods that must not read it."""
        if type(unlearner).reads_forget:
            return self.task
        return Task(self.task.retain, self.task.forget.subset(torch.zeros(0, dtype=torch.int64), "withheld"), self.task.val)


@functools.cache
def _loaded(dataset: str):
    suite = load_suite("quick", apply_tuning=False)
    config = Planner(plugins.get_registry(), suite).dataset_config(suite.dataset(dataset))
    return config, config.dataset.obj.load(DATA_DIR, False)


@functools.cache
def train_scores(dataset: str, seed: int, scorer: str = "confidence") -> torch.Tensor:
    """Memorization scores of the training split (the scorer trains like the original model)."""
    config, splits = _loaded(dataset)
    base = Setting(dataset, seed, splits, None, config, None, None, 0.0)  # type: ignore[arg-type]
    return plugins.get_registry().get("metric", scorer)().score(splits.train, base.context("train")).cpu()


@functools.cache
def setting(dataset: str = "digits", seed: int = 0, kind: str = "random", classes: tuple[int, ...] = (0,),
            fraction: float = 0.1, stratum: str = "mix") -> Setting:
    config, splits = _loaded(dataset)
    spec = ForgetSpec(kind, fraction=fraction, classes=classes, stratum=stratum)
    train = splits.train
    if kind == "random":
        mask = forget.random_mask(len(train), fraction, seed, spec.to_json())
    elif kind == "class":
        mask = forget.class_mask(train.y, classes, train.num_classes, dataset)
    else:
        mask = forget.memorization_mask(train_scores(dataset, seed), stratum, fraction, seed, spec.to_json())
    task = forget.split(train, mask, spec.to_json(), seed, splits.val)
    base = Setting(dataset, seed, splits, task, config, None, None, 0.0)  # type: ignore[arg-type]
    original, _ = standard_training(base.context("train"), train)
    start = time.perf_counter()
    retrained, _ = standard_training(base.context("train"), task.retain)
    seconds = time.perf_counter() - start
    return attrs.evolve(base, original=original, retrained=retrained, retrain_seconds=seconds)


def mia_efficacy(model: nn.Module, s: Setting) -> float:
    metric = plugins.get_registry().get("metric", "mia-efficacy")()
    ev = Evaluation(model=model, splits=s.splits, track="unlearning", task=s.task)
    return metric.compute(ev, s.context("mia"))["mia_efficacy"]


def scores(model: nn.Module, s: Setting) -> dict[str, float]:
    return {"forget_acc": accuracy(model, s.task.forget), "retain_acc": accuracy(model, s.task.retain),
            "test_acc": accuracy(model, s.splits.test), "val_acc": accuracy(model, s.splits.val),
            "mia_efficacy": mia_efficacy(model, s)}


@functools.cache
def retrained_scores(dataset: str, seed: int, kind: str, classes: tuple[int, ...] = (0,), stratum: str = "mix") -> dict[str, float]:
    s = setting(dataset, seed, kind, classes, stratum=stratum)
    return scores(s.retrained, s)


def measure(unlearner, dataset: str = "digits", seed: int = 0, kind: str = "random",
            classes: tuple[int, ...] = (0,), stratum: str = "mix") -> dict[str, float]:
    """Unlearn a copy of the original model; UA/RA/TA, val_acc, MIA-efficacy, avg_gap (to the retrained
    model, over forget/retain/test accuracy and MIA-efficacy), seconds and rte (seconds ÷ retraining's).
    ``kind="memorization"`` selects the ``stratum`` (default mix) by the confidence proxy as the RUM code does
    (``dememo.forget``)."""
    s = setting(dataset, seed, kind, classes, stratum=stratum)
    start = time.perf_counter()
    model = unlearner.unlearn(copy.deepcopy(s.original), s.given(unlearner), s.context())
    seconds = time.perf_counter() - start
    out = scores(model, s)
    ref = retrained_scores(dataset, seed, kind, classes, stratum)
    out["avg_gap"] = sum(abs(out[k] - ref[k]) for k in ("forget_acc", "retain_acc", "test_acc", "mia_efficacy")) / 4
    out["seconds"] = seconds
    out["rte"] = seconds / s.retrain_seconds
    out["model"] = model
    return out
