"""Core facilities for metrics and attacks (issue 5): curve-valued columns, censored and detail columns,
forget-kind restrictions, per-metric grid scopes, ensembles through the context, and replaying the cell's
unlearner on shadow models. Each is exercised end to end through ``dememo-bench`` with small plugins."""

from __future__ import annotations

import json
from typing import ClassVar

import attrs
import pytest
import torch

import dememo
from dememo import cli
from dememo.board import leaderboard
from dememo.testing import registered

CLASS_FORGET = """
[[forget]]
kind = "class"
classes = [1]
"""


@attrs.define
class CurveMetric(dememo.Metric):
    """A curve, a censored count and a detail column."""

    name: ClassVar[str] = "curve-metric"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    columns: ClassVar[dict] = {
        "curve": dememo.Column("curve", "info", "forget accuracy at three scales", unit="series"),
        "tries": dememo.Column("tries", "higher", "censored above 3", unit="epochs", cap=3),
        "hidden": dememo.Column("hidden", "info", "a diagnostic", unit="count", detail=True),
    }

    def compute(self, ev, ctx):
        acc = ev.accuracy(ev.model, ev.task.forget)
        return {"curve": dememo.Series([0, 1, 2], [acc, acc / 2, float("nan")], "scale"), "tries": 4.0, "hidden": 7}


@attrs.define
class ClassOnly(dememo.Metric):
    """Runs on class forget sets only."""

    name: ClassVar[str] = "class-only"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    forget_kinds: ClassVar[tuple[str, ...]] = ("class",)
    columns: ClassVar[dict] = {"class_only": dememo.Column("c", "info", "1", unit="number")}

    def compute(self, ev, ctx):
        return {"class_only": 1.0}


@attrs.define
class ClassAttack(dememo.Attack):
    """A model-stage attack for class forget sets only (identity)."""

    name: ClassVar[str] = "class-attack"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    forget_kinds: ClassVar[tuple[str, ...]] = ("class",)

    def attack(self, model, data, ctx):
        return model


@attrs.define
class Shadows(dememo.Metric):
    """Replays the cell's unlearner on two shadow models (declares ``replays`` when asked to)."""

    name: ClassVar[str] = "shadows"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    after_model_attack: ClassVar[bool] = False
    replays: ClassVar[bool] = True
    columns: ClassVar[dict] = {"shadow_forget_acc": dememo.Column("s", "info", "mean shadow forget accuracy")}

    def compute(self, ev, ctx):
        train = ev.splits.train
        subsets = torch.ones(2, len(train), dtype=torch.bool)
        ens = ctx.train_many(train, subsets)
        again = ctx.train_many(train, subsets)
        assert torch.equal(ens.logits(train.x[:20]), again.logits(train.x[:20]))
        forget = torch.zeros(len(train), dtype=torch.bool)
        forget[ev.task.forget.index] = True
        unlearned = ev.unlearn_many(ens, train, forget.expand(2, -1))
        correct = unlearned.logits(ev.task.forget.x).argmax(-1) == ev.task.forget.y
        return {"shadow_forget_acc": float(correct.float().mean())}


@attrs.define
class Undeclared(Shadows):
    """Replays without declaring it."""

    name: ClassVar[str] = "undeclared"
    replays: ClassVar[bool] = False
    columns: ClassVar[dict] = {"undeclared": dememo.Column("u", "info", "never")}


class Facilities:
    @dememo.hookimpl
    def register_metrics(self, register):
        for cls in (CurveMetric, ClassOnly, Shadows, Undeclared):
            register(cls)

    @dememo.hookimpl
    def register_attacks(self, register):
        register(ClassAttack)


def run(suite, tmp_path, *extra):
    code = cli.main(["--all", "--suite", str(suite), "--out", str(tmp_path / "out"), "--cache-dir",
                     str(tmp_path / "cache"), "--quiet", "--unlearner", "finetune", *extra])
    return code, json.loads((tmp_path / "out" / "results.json").read_text())


@pytest.fixture
def two_forget_suite(tiny_suite):
    text = tiny_suite.read_text().replace('tracks = ["unlearnability", "unlearning"]', 'tracks = ["unlearning"]')
    tiny_suite.write_text(text + CLASS_FORGET)
    return tiny_suite


def test_series_cap_and_detail_columns(two_forget_suite, tmp_path, capsys):
    with registered(Facilities(), name="facilities"):
        code, results = run(two_forget_suite, tmp_path, "--metric", "curve-metric", "--metric", "unlearning-accuracy",
                            "--attack", "none")
    assert code == 0
    cell = next(c for c in results["cells"] if c["unlearner"] == "finetune" and c["forget"] == "random-10%")
    curve = cell["series"]["curve"]
    assert curve["x_name"] == "scale" and curve["x"] == [0, 1, 2] and curve["y"][2] is None
    assert curve["y"][0] == pytest.approx(cell["metrics"]["forget_acc"])
    assert "curve" not in cell["metrics"] and cell["metrics"]["hidden"] == 7
    text = leaderboard.render(results)
    assert "> 3" in text and "hidden" not in text.split("Mean ±")[0]
    assert "hidden" in leaderboard.to_csv(results)
    # a cached re-run decodes the stored series identically
    code, again = run(two_forget_suite, tmp_path, "--metric", "curve-metric", "--metric", "unlearning-accuracy", "--attack", "none")
    twin = next(c for c in again["cells"] if c["key"] == cell["key"])
    assert twin["series"] == cell["series"]


def test_forget_kinds_and_grid_scopes(two_forget_suite, tmp_path):
    text = two_forget_suite.read_text().replace("metric_forget = {", 'metric_forget = { unlearning-accuracy = ["class-1"], ')
    text = text.replace("[grid]", '[grid]\nmodel_attack_forget = ["random-10%"]\nattack_forget = { class-attack = ["class-1"] }')
    two_forget_suite.write_text(text)
    with registered(Facilities(), name="facilities"):
        code, results = run(two_forget_suite, tmp_path, "--metric", "class-only", "--metric", "unlearning-accuracy",
                            "--attack", "class-attack")
    assert code == 0
    by = {(c["forget"], c["attack"]) for c in results["cells"] if c["unlearner"] == "finetune"}
    # on random-10% neither metric applies (class-only by kind, unlearning-accuracy by the grid): no cells
    assert by == {("class-1", "none"), ("class-1", "class-attack")}
    assert all({"class_only", "forget_acc"} <= set(c["metrics"]) for c in results["cells"])


def test_replaying_the_unlearner_on_shadows(tiny_suite, tmp_path):
    with registered(Facilities(), name="facilities"):
        code, results = run(tiny_suite, tmp_path, "--metric", "shadows", "--metric", "undeclared", "--attack", "none",
                            "--poisoner", "none")
    cells = {c["unlearner"]: c for c in results["cells"] if c["track"] == "unlearning"}
    # the original keeps its forget set; retraining shadows (ctx.train on each member's retain set) does not
    assert cells["original"]["metrics"]["shadow_forget_acc"] > cells["retrain"]["metrics"]["shadow_forget_acc"]
    assert all(c["status"] == "failed" and "replays = True" in c["error"]["message"] for c in cells.values()), \
        "a metric that replays without declaring it fails clearly (its cache key would miss the unlearner)"


def test_a_metric_filter_brings_along_the_metrics_it_uses():
    """--metric avg-gap alone used to fail every cell (avg-gap reads mia-efficacy and unlearning-accuracy)."""
    from dememo import plugins
    from dememo.planning.planner import Planner
    from dememo.planning.suite import load_suite

    planner = Planner(plugins.get_registry(), load_suite("quick"))
    assert planner._names("metric", ("avg-gap",)) == ["avg-gap", "mia-efficacy", "unlearning-accuracy"]
    assert planner._names("metric", ("clean-accuracy",)) == ["clean-accuracy"]
