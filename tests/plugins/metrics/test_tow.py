"""The ``tow`` / ``tow-mia`` metric (plugins/dememo_plugins/metrics/tow.py): behaviour tests and reference checks.

mia-entropy, tow / tow-mia, relearn-time and the relearn / prototype-relearn attacks on the embedded data.

- tow on digits random-10 %: the retrain reads exactly 1 (tow and tow-mia); gradient ascent at lr 0.1 for 5
  epochs (forget / retain / test accuracy 0.70 / 0.72 / 0.73 against the retrain's 0.94 / 1.00 / 0.97)
  reads tow 0.42.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo_plugins.metrics.tow import ToW, ToWMIA

import support.unlearning as kit
from support.attacks.relearning import compute, evaluation, unlearn
from support.metrics.unlearning import fractions, stub_evaluation


def rum_tow(acc: dict, acc_rt: dict, keys: tuple[str, ...]) -> float:
    """kairanzhao/RUM ``surgical_plugins/analysis.py`` / ``analysis_mia.py``: per column, 1 − |x − x_rt| / 100
    for accuracies in percent and 1 − |x − x_rt| for the MIA confidence (a fraction); ToW = the product."""
    product = 1.0
    for key in keys:
        if key == "MIA_confidence":
            product *= 1 - abs(acc[key] - acc_rt[key])
        else:
            product *= 1 - abs(acc[key] - acc_rt[key]) / 100
    return product


@pytest.mark.reference("metric", "tow", source="kairanzhao/RUM:surgical_plugins/analysis.py")
@pytest.mark.reference("metric", "tow-mia", source="kairanzhao/RUM:surgical_plugins/analysis_mia.py")
@settings(max_examples=40, deadline=None)
@given(st.tuples(fractions, fractions, fractions, fractions), st.tuples(fractions, fractions, fractions, fractions))
def test_tow_and_tow_mia_match_the_rum_analysis_scripts(model, retrain):
    """ToW = (1 − |Δ forget|)(1 − |Δ retain|)(1 − |Δ test|) and ToW-MIA with the forget term replaced by the
    MIA-efficacy gap (RUM, Zhao et al., NeurIPS 2024; the released analysis scripts compute it from the saved
    accuracies in percent and the SVC MIA's ``confidence`` entry, a fraction)."""

    def metrics(fa, ra, ta, mia):
        return {"unlearning-accuracy": {"forget_acc": fa, "retain_acc": ra, "test_acc": ta},
                "mia-efficacy": {"mia_efficacy": mia}}

    def as_saved(fa, ra, ta, mia):  # the scripts' columns
        return {"forget": 100 * fa, "retain": 100 * ra, "test": 100 * ta, "MIA_confidence": mia}

    ev = stub_evaluation({"model": metrics(*model), "retrained": metrics(*retrain)})
    saved, saved_rt = as_saved(*model), as_saved(*retrain)
    assert ToW().compute(ev, None)["tow"] == pytest.approx(rum_tow(saved, saved_rt, ("forget", "retain", "test")), abs=1e-12)
    assert ToWMIA().compute(ev, None)["tow_mia"] == pytest.approx(
        rum_tow(saved, saved_rt, ("MIA_confidence", "retain", "test")), abs=1e-12)


def test_tow_is_one_for_the_retrain_and_drops_after_harsh_gradient_ascent():
    s = kit.setting("digits", 0, "random")
    assert compute(ToW(), s.retrained, s) == 1.0 and compute(ToWMIA(), s.retrained, s) == 1.0
    ga = unlearn(s, lr=0.1, epochs=5)
    tow, tow_mia = compute(ToW(), ga, s), compute(ToWMIA(), ga, s)
    assert 0 <= tow < 0.6 and 0 <= tow_mia < 0.9  # measured 0.42 and 0.60
    # the product of the three (1 − |gap|) factors, read from the unlearning-accuracy metric
    acc = evaluation(ga, s).metric("unlearning-accuracy")
    ref = evaluation(s.retrained, s).metric("unlearning-accuracy")
    expected = 1.0
    for key in ("forget_acc", "retain_acc", "test_acc"):
        expected *= 1 - abs(acc[key] - ref[key])
    assert tow == pytest.approx(expected)
