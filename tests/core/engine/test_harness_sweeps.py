"""Core facilities for the unlearnability track: partial poisoning, data-level metrics, learner-side
attacks with a history, the suite's attack grid, and attack-strength curves."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import attrs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dememo
from dememo import cli
from dememo.board.leaderboard import area_under, curve_values, render
from dememo.planning.planner import Filters, Planner
from dememo.planning.suite import Curve, Grid, load_suite
from dememo.results.record import records
from dememo.engine.runner import describe_subset, poison_subset
from dememo.testing import registered


@attrs.define
class PlusEps(dememo.Poisoner):
    """Adds +ε to every pixel (clipped): a poison whose footprint is easy to see."""

    name: ClassVar[str] = "plus-eps"
    norm: ClassVar[str] = "linf"

    def poison(self, data, ctx):
        return (data.x + ctx.budget.eps).clamp(0, 1)


@attrs.define
class PoisonedFraction(dememo.Metric):
    """Fraction of training samples whose images differ from the clean split (a property of the data)."""

    name: ClassVar[str] = "poisoned-fraction"
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability",)
    after_model_attack: ClassVar[bool] = False
    reads_model: ClassVar[bool] = False
    columns: ClassVar[dict] = {"poisoned_frac": dememo.Column("poisoned", "info", "share of perturbed samples")}
    calls: ClassVar[list[str]] = []

    def compute(self, ev, ctx):
        PoisonedFraction.calls.append(ev.train_data.fingerprint)
        changed = (ev.train_data.x != ev.splits.train.x).flatten(1).any(1)
        return {"poisoned_frac": float(changed.float().mean())}


@attrs.define
class HistoryLearner(dememo.Attack):
    """Standard training with a per-epoch record on the monitor split (a learner-side attack that
    returns its history)."""

    name: ClassVar[str] = "history-learner"
    stages: ClassVar[tuple[str, ...]] = ("train",)
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability",)
    seen: ClassVar[list[tuple[int, int]]] = []

    def train(self, data, ctx):
        HistoryLearner.seen.append((len(data.train), len(data.holdout)))
        model = ctx.new_model()
        history = ctx.fit(model, data.train, eval_data=data.monitor)
        return model, history


class Plugins:
    @dememo.hookimpl
    def register_poisoners(self, register):
        register(PlusEps)

    @dememo.hookimpl
    def register_metrics(self, register):
        register(PoisonedFraction)

    @dememo.hookimpl
    def register_attacks(self, register):
        register(HistoryLearner)


def run(suite, tmp_path, *extra, out="out"):
    code = cli.main(["--suite", str(suite), "--out", str(tmp_path / out), "--cache-dir", str(tmp_path / "cache"),
                     "--quiet", *extra])
    return code, json.loads((tmp_path / out / "results.json").read_text())


# --- partial poisoning -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 500), a=st.floats(0.01, 1.0), b=st.floats(0.01, 1.0), seed=st.integers(0, 99))
def test_poison_subsets_are_seeded_sized_and_nested_across_ratios(n, a, b, seed):
    lo, hi = sorted((a, b))
    small, large = poison_subset(n, lo, "data", seed), poison_subset(n, hi, "data", seed)
    assert int(small.sum()) == round(lo * n) and int(large.sum()) == round(hi * n)
    assert not (small & ~large).any(), "a larger ratio adds samples, never swaps them"
    assert torch.equal(small, poison_subset(n, lo, "data", seed))
    assert describe_subset(small, lo) == describe_subset(poison_subset(n, lo, "data", seed), lo)


def test_subsets_differ_between_seeds_and_datasets():
    base = poison_subset(1000, 0.2, "data", 0)
    assert not torch.equal(base, poison_subset(1000, 0.2, "data", 1))
    assert not torch.equal(base, poison_subset(1000, 0.2, "other", 0))


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5])
def test_ratio_outside_unit_interval_is_a_clear_error(tiny_suite, tmp_path, capsys, ratio):
    with registered(Plugins(), name="sweeps"):
        code = cli.main(["--suite", str(tiny_suite), "--poisoner", "plus-eps", "--set", f"plus-eps.ratio={ratio}",
                         "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "ratio" in err and "(0, 1]" in err


def test_partial_poisoning_perturbs_exactly_the_recorded_subset_and_reuses_the_poison(tiny_suite, tmp_path):
    PoisonedFraction.calls.clear()
    common = ["--poisoner", "plus-eps", "--metric", "poisoned-fraction", "--attack", "none"]
    with registered(Plugins(), name="sweeps"):
        code, full = run(tiny_suite, tmp_path, *common, out="full")
        code2, part = run(tiny_suite, tmp_path, *common, "--set", "plus-eps.ratio=0.25", out="part")
    assert code == code2 == 0
    cell = next(c for c in part["cells"] if c["poisoner"].startswith("plus-eps"))
    subset = cell["poison_subset"]
    assert subset["ratio"] == 0.25 and subset["positions_sha256"]
    n = round(subset["count"] / 0.25)
    # δ = +ε clipped is non-zero for almost every sample, so the perturbed share is the subset's share
    assert cell["metrics"]["poisoned_frac"] == pytest.approx(0.25, abs=1.5 / n)
    assert cell["timings"]["poison"]["cached"], "a ratio sweep reuses the stored full-set perturbation"
    full_cell = next(c for c in full["cells"] if c["poisoner"].startswith("plus-eps"))
    assert full_cell["metrics"]["poisoned_frac"] > 0.9 and "poison_subset" not in full_cell


# --- data-level metrics and learner-side attacks ----------------------------------------------------------


def test_data_level_metric_is_computed_once_per_training_set_and_train_attacks_get_a_history(tiny_suite, tmp_path):
    PoisonedFraction.calls.clear()
    HistoryLearner.seen.clear()
    with registered(Plugins(), name="sweeps"):
        code, results = run(tiny_suite, tmp_path, "--poisoner", "plus-eps", "--attack", "history-learner",
                            "--metric", "poisoned-fraction", "--metric", "peak-accuracy", "--metric", "clean-accuracy")
    assert code == 0
    cells = [c for c in results["cells"] if c["poisoner"] == "plus-eps"]
    assert {c["train_attack"] for c in cells} == {"none", "history-learner"}
    assert len(PoisonedFraction.calls) == len(set(PoisonedFraction.calls)) == 2, "once per training set (clean, poisoned)"
    learner = next(c for c in cells if c["train_attack"] == "history-learner")
    assert math.isfinite(learner["metrics"]["peak_test_acc"]), "a returned history feeds the peak-accuracy metric"
    assert learner["metrics"]["peak_test_acc"] >= learner["metrics"]["test_acc"] - 1e-9
    assert HistoryLearner.seen and all(holdout > 0 for _, holdout in HistoryLearner.seen)


# --- the attack grid ---------------------------------------------------------------------------------------


def test_grid_limits_learner_side_attacks_to_named_poisoners_and_datasets(tiny_suite):
    suite = load_suite(str(tiny_suite))
    with registered(Plugins(), name="sweeps") as registry:
        def plan(grid, filters=Filters(poisoner=("plus-eps", "random-noise"))):
            return Planner(registry, attrs.evolve(suite, grid=grid)).cells(filters)

        everything = plan(Grid())
        assert {(c.poisoner.name, c.train_attack.name) for c in everything} >= {("plus-eps", "history-learner")}
        limited = plan(Grid(train_attack_poisoners=("none",)))
        unfiltered = [c for c in plan(Grid(train_attack_poisoners=("none",)), Filters()) if c.track == "unlearnability"]
        assert unfiltered and all(c.train_attack.name == "none" or c.poisoner.name == "none" for c in unfiltered)
        assert {c.poisoner.name for c in limited if c.train_attack.name != "none"} >= {"plus-eps"}, \
            "poisoners named on the command line are always included"
        assert not [c for c in plan(Grid(train_attack_datasets=("elsewhere",))) if c.train_attack.name != "none"]
        crossed = plan(Grid(model_attacks_after_train_attacks=False))
        assert all(c.attack.name == "none" for c in crossed if c.train_attack.name != "none")
        assert any(c.attack.name != "none" for c in crossed if c.train_attack.name == "none")


# --- attack-strength curves --------------------------------------------------------------------------------


def test_area_under_a_curve_is_normalised_by_its_range():
    assert area_under({0.0: 0.3, 1.0: 0.3, 4.0: 0.3}) == pytest.approx(0.3)
    assert area_under({0.0: 0.0, 2.0: 1.0}) == pytest.approx(0.5)
    assert area_under({1.0: 0.5}) is None


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.floats(0, 10, allow_nan=False), st.floats(0, 1), min_size=2))
def test_area_under_lies_between_the_curve_extremes(points):
    area = area_under(points)
    if area is None:
        assert len(set(points)) < 2 or max(points) == min(points)
        return
    assert min(points.values()) - 1e-9 <= area <= max(points.values()) + 1e-9


def _cell(method, seed, attack, eta, acc):
    spec = {"name": attack, "params": {"eta": eta, "method": "sgd"}} if eta is not None else {"name": "none", "params": {}}
    label = f"{attack}(eta={eta})" if eta is not None else "none"
    return {"track": "unlearnability", "dataset": "d", "forget": None, "method": method, "seed": seed, "key": f"{method}-{seed}-{label}",
            "attack": label, "status": "ok", "metrics": {"test_acc": acc}, "params": {"attack": spec},
            "architecture": "a"}


def test_curve_table_integrates_each_method_per_seed_from_the_unattacked_model():
    cells = []
    for seed, shift in ((0, 0.0), (1, 0.1)):
        cells += [_cell("em", seed, "none", None, 0.2 + shift), _cell("em", seed, "weight-recovery", 1.0, 0.6 + shift),
                  _cell("em", seed, "weight-recovery", 2.0, 0.8 + shift), _cell("none", seed, "none", None, 0.9),
                  _cell("none", seed, "weight-recovery", 1.0, 0.9), _cell("none", seed, "weight-recovery", 2.0, 0.9)]
    results = {"suite": {"curves": [attrs.asdict(Curve("weight-recovery", "eta"))], "references": {"poisoner": ["none"]}},
               "columns": {"unlearnability": {"test_acc": {"label": "TA", "direction": "lower", "unit": "fraction"}}},
               "cells": cells}
    values = curve_values(results, records(cells))
    em = values[("em", "weight-recovery AUC over eta", "test_acc")]
    # trapezoid over (0, 0.2), (1, 0.6), (2, 0.8): (0.4 + 0.7) / 2 = 0.55; seed 1 is 0.1 higher
    assert em == pytest.approx([0.55, 0.65])
    assert values[("none", "weight-recovery AUC over eta", "test_acc")] == pytest.approx([0.9, 0.9])
    text = render(results)
    assert "Area under the attack-strength curve" in text and "60.0 ± 7.1" in text


def test_quick_suite_declares_its_grid_and_the_depth_sweep():
    """quick sweeps weight recovery over η with the depth metric (both tracks, standard training only),
    not with attack variants: a curve table over weight-recovery would repeat it on one track."""
    suite = load_suite("quick")
    assert suite.grid.train_attack_poisoners and not suite.grid.model_attacks_after_train_attacks
    assert not suite.curves and "weight-recovery" not in suite.variants.get("attack", {})
    assert suite.grid.metric_train_attacks == {"depth": ("none",)} and suite.grid.metric_forget["depth"] == ("class-0",)
