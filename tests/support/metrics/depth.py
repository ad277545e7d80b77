"""Helpers shared by metrics/test_certified_learnability.py, metrics/test_depth.py."""

from __future__ import annotations

import copy

import pytest

from dememo import plugins
from dememo.evaluation import Evaluation
from dememo.planning.planner import Planner
from dememo.planning.suite import ForgetSpec, load_suite
from dememo_plugins.metrics.depth import Depth

from support.unlearning import setting


@pytest.fixture(scope="module")
def class0():
    s = setting("digits", 0, "class")
    suite = load_suite("quick")
    planner = Planner(plugins.get_registry(), suite)
    models = {"original": s.original, "retrain": s.retrained}
    for name in ("gradient-ascent", "rurk"):
        configured, _ = planner.unlearners_for(suite.dataset("digits"), ForgetSpec("class", classes=(0,)), name)[0]
        models[name] = configured.obj.unlearn(copy.deepcopy(s.original), s.given(configured.obj), s.context())
    depth = Depth(recovery_fraction=1.0, etas=(0.25, 0.5, 1.0, 4.0), sigmas=(0.03, 0.1), draws=8)

    def measure(model, metric=depth):
        ev = Evaluation(model=model, splits=s.splits, track="unlearning", task=s.task,
                        references=lambda n: {"original": s.original, "retrained": s.retrained}[n])
        return metric.compute(ev, s.context("depth"))

    return s, models, {k: measure(m) for k, m in models.items()}, measure
