"""Helpers shared by attacks/test_prototype_relearn.py, attacks/test_relearn.py, metrics/test_mia_entropy.py, metrics/test_relearn_time.py, metrics/test_tow.py."""

from __future__ import annotations

import copy

import torch

from dememo import plugins
from dememo.evaluation import Evaluation
from dememo.families import AttackData
from dememo_plugins.unlearners.gradient_ascent import GradientAscent


def evaluation(model, s) -> Evaluation:
    """An Evaluation like the runner's: references are the setting's models, other metrics are computed with
    their default parameters (recursively, on the model or on a reference)."""
    refs = {"original": s.original, "retrained": s.retrained}

    def metric(name, on="model"):
        target = model if on == "model" else refs[on]
        return plugins.get_registry().get("metric", name)().compute(evaluation(target, s), s.context("metric"))

    return Evaluation(model=model, splits=s.splits, track="unlearning", task=s.task, train_data=s.splits.train,
                      references=refs.__getitem__, metric=metric)


def compute(metric, model, s) -> float:
    (value,) = metric.compute(evaluation(model, s), s.context("metric")).values()
    return value


def unlearn(s, **params):
    return GradientAscent(**params).unlearn(copy.deepcopy(s.original), s.task, s.context())


def attack(attacker, model, s, purpose="attack"):
    return attacker.attack(model, AttackData(s.splits, s.task), s.context(purpose))


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
