"""``peak-accuracy``: the best clean test accuracy reached at any epoch of training.

Protocol lesson from the unlearnability literature: report final *and* peak accuracy, because some
poisons only delay learning (early stopping would defeat them). Read from the per-epoch evaluation the
harness records during standard training; needs no extra computation. Not defined after a model-stage
attack or for learner-side attacks that do not record a history (reported as n/a).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo


@attrs.define
class PeakAccuracy(dememo.Metric):
    """Peak clean test accuracy over training epochs (the early-stopping view)."""

    name: ClassVar[str] = "peak-accuracy"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability",)
    after_model_attack: ClassVar[bool] = False
    columns: ClassVar[dict[str, dememo.Column]] = {
        "peak_test_acc": dememo.Column("peak TA", "lower", "highest clean test accuracy over training epochs"),
        "peak_epoch": dememo.Column("peak epoch", "info", "epoch at which the peak was reached", unit="epochs"),
    }

    def compute(self, ev, ctx):
        accs = [e["eval_acc"] for e in (ev.history or []) if "eval_acc" in e]
        if not accs:
            return {"peak_test_acc": float("nan"), "peak_epoch": float("nan")}
        best = max(range(len(accs)), key=accs.__getitem__)
        return {"peak_test_acc": accs[best], "peak_epoch": float(best + 1)}


@dememo.hookimpl
def register_metrics(register):
    register(PeakAccuracy)
