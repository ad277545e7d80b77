"""The ``peak-accuracy`` metric (plugins/dememo_plugins/metrics/peak_accuracy.py): behaviour tests and reference checks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.evaluation import Evaluation
from dememo_plugins.metrics.peak_accuracy import PeakAccuracy

from support.metrics.unlearning import Table


@pytest.mark.reference("metric", "peak-accuracy",
                       source="paper: dememo REFERENCES.md protocol lessons (report final and peak test accuracy); "
                              "peak = max over epochs e of TA_e, first epoch reaching it")
@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.none()), min_size=0, max_size=12))
def test_peak_accuracy_is_the_first_maximum_over_recorded_epochs(accs):
    """Peak accuracy (the early-stopping view of the unlearnability literature; no formula beyond the maximum
    is published): the largest per-epoch test accuracy and the (1-based) epoch that first reached it, counted
    over the epochs that recorded an accuracy; NaN without any."""
    history = [{"epoch": i + 1, "loss": 0.0} | ({} if a is None else {"eval_acc": a}) for i, a in enumerate(accs)]
    ev = Evaluation(model=Table(), splits=None, track="unlearnability", history=history)
    values = PeakAccuracy().compute(ev, None)
    best, at, seen = -1.0, None, 0
    for record in history:
        if "eval_acc" in record:
            seen += 1
            if record["eval_acc"] > best:
                best, at = record["eval_acc"], seen
    if at is None:
        assert math.isnan(values["peak_test_acc"]) and math.isnan(values["peak_epoch"])
    else:
        assert values == {"peak_test_acc": best, "peak_epoch": float(at)}
