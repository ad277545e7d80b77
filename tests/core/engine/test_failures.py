"""A plugin that breaks the threat model or crashes fails only its own cells, with a one-line reason."""

from __future__ import annotations

import json
from typing import ClassVar

import attrs
import torch

import dememo
from dememo.engine.cell import run_cell
from dememo import cli
from dememo.testing import registered


@attrs.define
class BudgetBreaker(dememo.Poisoner):
    """Adds 2ε: breaks its L∞ budget on purpose."""

    name: ClassVar[str] = "budget-breaker"
    norm: ClassVar[str] = "linf"

    def poison(self, data, ctx):
        return (data.x + 2 * ctx.budget.eps).clamp(0, 1)


@attrs.define
class NaNUnlearner(dememo.Unlearner):
    """Returns NaN weights."""

    name: ClassVar[str] = "nan-weights"

    def unlearn(self, model, task, ctx):
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        return model


@attrs.define
class CrashingMetric(dememo.Metric):
    """Raises inside compute."""

    name: ClassVar[str] = "crashing-metric"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    columns: ClassVar[dict] = {"boom": dememo.Column("boom", "higher", "never produced")}

    def compute(self, ev, ctx):
        raise RuntimeError("metric exploded")


class FaultyPlugins:
    @dememo.hookimpl
    def register_poisoners(self, register):
        register(BudgetBreaker)

    @dememo.hookimpl
    def register_unlearners(self, register):
        register(NaNUnlearner)


def run(tiny_suite, tmp_path, capsys, *extra):
    code = cli.main(["--all", "--suite", str(tiny_suite), "--out", str(tmp_path / "out"),
                     "--cache-dir", str(tmp_path / "cache"), "--quiet", *extra])
    captured = capsys.readouterr()
    return code, captured, json.loads((tmp_path / "out" / "results.json").read_text())


def test_budget_violation_fails_its_cells_and_keeps_every_other(tiny_suite, tmp_path, capsys):
    with registered(FaultyPlugins(), name="faulty"):
        code, captured, results = run(tiny_suite, tmp_path, capsys, "--poisoner", "budget-breaker", "--poisoner", "em")
    assert code == 1, "a failed cell makes the run exit 1 so scripts notice"
    cells = results["cells"]
    broken = [c for c in cells if c["poisoner"] == "budget-breaker"]
    assert broken and all(c["status"] == "failed" for c in broken)
    message = broken[0]["error"]["message"]
    assert "exceed the budget" in message and "\n" not in message
    assert broken[0]["error"]["stage"] == "poison"
    others = [c for c in cells if c["poisoner"] != "budget-breaker"]
    assert others and all(c["status"] == "ok" for c in others)
    assert {c["poisoner"] for c in others} >= {"none", "em"}
    assert "FAILED budget-breaker" in captured.out and "exceed the budget" in captured.out
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "FAILED budget-breaker" in md


def test_non_finite_weights_fail_the_unlearner_with_a_named_reason(tiny_suite, tmp_path, capsys):
    with registered(FaultyPlugins(), name="faulty"):
        code, _, results = run(tiny_suite, tmp_path, capsys, "--unlearner", "nan-weights", "--attack", "none")
    assert code == 1
    bad = [c for c in results["cells"] if c["unlearner"] == "nan-weights"]
    assert bad and bad[0]["status"] == "failed"
    assert "non-finite weights" in bad[0]["error"]["message"]
    assert "Traceback" in bad[0]["error"]["traceback"] or bad[0]["error"]["traceback"] == ""
    assert all(c["status"] == "ok" for c in results["cells"] if c["unlearner"] != "nan-weights")


def test_crashing_metric_fails_the_cell_but_keeps_other_metrics(tiny_suite, tmp_path, capsys):
    class Plugin:
        @dememo.hookimpl
        def register_metrics(self, register):
            register(CrashingMetric)

    with registered(Plugin(), name="crashing"):
        code, _, results = run(tiny_suite, tmp_path, capsys, "--unlearner", "retrain", "--attack", "none")
    assert code == 1
    cell = next(c for c in results["cells"] if c["unlearner"] == "retrain")
    assert cell["status"] == "failed"
    assert cell["error"]["stage"] == "metric:crashing-metric"
    assert "metric exploded" in cell["error"]["message"]
    assert "RuntimeError" in cell["error"]["traceback"]
    assert cell["metrics"]["avg_gap"] == 0.0, "the other metrics of the cell are still reported"


# -- issue 9: numerical and contract faults are caught with a named reason -----------------------------

from qa.faults import NumericalFaults  # noqa: E402


def test_numerical_and_mutation_faults_fail_only_their_cells_with_named_reasons(tiny_suite, tmp_path, capsys):
    """One run with every fault: each faulty plugin's cells fail with its reason; later cells that share the
    retain set and model still get the clean numbers (the mutation was caught before it spread)."""
    with registered(NumericalFaults(), name="numerical"):
        code, _, results = run(tiny_suite, tmp_path, capsys, "--poisoner", "nan-images", "--unlearner", "shape-shifter",
                               "--unlearner", "aaa-val-scribbler", "--unlearner", "inf-weights", "--unlearner", "finetune",
                               "--attack", "none", "--metric", "model-scribbler", "--metric", "unlearning-accuracy",
                               "--metric", "clean-accuracy")
    assert code == 1
    cells = results["cells"]

    def error(**match):
        found = [c for c in cells if all(c[k] == v for k, v in match.items())]
        assert found, match
        return found[0]["error"]

    assert "NaN or Inf" in error(poisoner="nan-images")["message"]
    assert "changed the model architecture" in error(unlearner="shape-shifter")["message"]
    assert "non-finite weights" in error(unlearner="inf-weights")["message"]
    scribbled = error(unlearner="aaa-val-scribbler")["message"]
    assert "modified its input task.val.x" in scribbled and "in place" in scribbled
    order = [c["unlearner"] for c in cells]
    assert order.index("aaa-val-scribbler") < order.index("finetune")
    metric_error = error(unlearner="finetune")
    assert metric_error["stage"] == "metric:model-scribbler" and "modified its input model." in metric_error["message"]
    for c in cells:
        if c["status"] == "failed":
            assert "\n" not in c["error"]["message"]
    assert any(c["status"] == "ok" for c in cells if c["track"] == "unlearnability")


def test_a_caught_mutation_drops_the_damaged_shared_data(tiny_suite, tmp_path):
    """The runner reloads what a plugin damaged in place, so later cells see the dataset as it is on disk."""
    from dememo.planning.planner import Filters, Planner
    from dememo.planning.suite import load_suite
    from dememo.engine.cache import Store
    from dememo.engine.runner import Runner

    with registered(NumericalFaults(), name="numerical") as registry:
        planner = Planner(registry, load_suite(str(tiny_suite)))
        cells = planner.cells(Filters(unlearner=("aaa-val-scribbler",), attack=("none",), metric=("unlearning-accuracy",)))
        cell = next(c for c in cells if c.unlearner is not None and c.unlearner.name == "aaa-val-scribbler")
        runner = Runner(Store(tmp_path / "cache"), torch.device("cpu"), planner=planner)
        env = runner.env(cell.data)
        pristine = env.splits.val.x.clone()
        record = run_cell(runner, cell)
    assert record.status == "failed" and "task.val.x" in record.error.message
    assert not torch.equal(env.splits.val.x, pristine), "the plugin did damage the old copy"
    reloaded = runner.env(cell.data)
    assert reloaded is not env and torch.equal(reloaded.splits.val.x, pristine)
    assert not runner.memo.mem
