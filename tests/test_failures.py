"""A plugin that breaks the threat model or crashes fails only its own cells, with a one-line reason."""

from __future__ import annotations

import json
from typing import ClassVar

import attrs
import torch

import dememo
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
