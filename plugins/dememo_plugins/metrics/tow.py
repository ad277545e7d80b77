"""``tow`` and ``tow-mia``: Tug-of-War, the retrain-relative summary of Zhao et al. ("What makes unlearning
hard and what to do about it", RUM, arXiv 2406.01257; used again in "Scalability of memorization-based
unlearning", arXiv 2410.16516).

    ToW     = (1 − |Δ forget acc|) · (1 − |Δ retain acc|) · (1 − |Δ test acc|)
    ToW-MIA = (1 − |Δ MIA-efficacy|) · (1 − |Δ retain acc|) · (1 − |Δ test acc|)

with accuracies in [0, 1] and every Δ taken against the paired retrained model (same seed, same split):
Δ x = x(unlearned) − x(retrain). Each factor is in [0, 1], so ToW is in [0, 1], higher is better, and the
retrain itself reads exactly 1. ToW-MIA replaces the forget-accuracy term by the gap in MIA-efficacy (the
``mia-efficacy`` plugin: SVC on true-class confidence, SalUn's attack); the public RUM code's MIA analysis
computes exactly this product with that attack (read for facts only: kairanzhao/RUM,
``surgical_plugins/analysis.py`` for ToW and ``surgical_plugins/analysis_mia.py`` for ToW-MIA; they take
1 − |Δ|/100 of accuracies saved in percent and 1 − |Δ| of the SVC MIA's ``confidence`` entry, a fraction,
per seed, then average over seeds; dememo reports the per-seed value and the leaderboard averages). No
deviation; tests/plugins/metrics/test_tow.py checks the product against that transcription.

The values are read from the ``unlearning-accuracy`` and ``mia-efficacy`` metrics with their configured
parameters, on the evaluated model and on the retrained reference; they are computed once and cached.
NaN (an empty forget set) propagates.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo


def _accuracy_terms(ev) -> tuple[float, float]:
    """(1 − |Δ retain acc|)(1 − |Δ test acc|) and |Δ forget acc| against the paired retrain."""
    acc, acc_r = ev.metric("unlearning-accuracy"), ev.metric("unlearning-accuracy", on="retrained")
    shared = (1 - abs(acc["retain_acc"] - acc_r["retain_acc"])) * (1 - abs(acc["test_acc"] - acc_r["test_acc"]))
    return shared, abs(acc["forget_acc"] - acc_r["forget_acc"])


@attrs.define
class ToW(dememo.Metric):
    """Tug-of-War (RUM): product of (1 − |gap to retrain|) over forget, retain and test accuracy."""

    name: ClassVar[str] = "tow"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning", "interplay")
    needs: ClassVar[tuple[str, ...]] = ("retrained",)
    uses: ClassVar[tuple[str, ...]] = ("unlearning-accuracy",)
    columns: ClassVar[dict[str, dememo.Column]] = {
        "tow": dememo.Column("ToW", "higher", "(1 − |Δ forget acc|)(1 − |Δ retain acc|)(1 − |Δ test acc|), Δ against "
                             "the paired retrain (same seed and split); 1 = the retrain's accuracies (RUM)",
                             unit="number"),
    }

    def compute(self, ev, ctx):
        shared, forget_gap = _accuracy_terms(ev)
        return {"tow": (1 - forget_gap) * shared}


@attrs.define
class ToWMIA(dememo.Metric):
    """ToW-MIA (RUM): ToW with the forget-accuracy term replaced by the MIA-efficacy gap to retrain."""

    name: ClassVar[str] = "tow-mia"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    needs: ClassVar[tuple[str, ...]] = ("retrained",)
    uses: ClassVar[tuple[str, ...]] = ("unlearning-accuracy", "mia-efficacy")
    columns: ClassVar[dict[str, dememo.Column]] = {
        "tow_mia": dememo.Column("ToW-MIA", "higher", "(1 − |Δ MIA-efficacy|)(1 − |Δ retain acc|)(1 − |Δ test acc|), "
                                 "Δ against the paired retrain; MIA-efficacy = SVC on true-class confidence, share "
                                 "of forget predicted non-member (SalUn); 1 = the retrain's values (RUM)",
                                 unit="number"),
    }

    def compute(self, ev, ctx):
        shared, _ = _accuracy_terms(ev)
        mia, mia_r = ev.metric("mia-efficacy"), ev.metric("mia-efficacy", on="retrained")
        return {"tow_mia": (1 - abs(mia["mia_efficacy"] - mia_r["mia_efficacy"])) * shared}


@dememo.hookimpl
def register_metrics(register):
    register(ToW)
    register(ToWMIA)
