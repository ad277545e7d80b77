"""``avg-gap``: the average gap to the paired retrained model (SalUn, Fan et al., ICLR 2024, Table 1).

Avg Gap = mean(|UA − UA_r|, |RA − RA_r|, |TA − TA_r|, |MIA − MIA_r|), with UA = 1 − forget accuracy and
MIA the MIA-efficacy, each x_r measured on the model retrained on the retain set with the same seed and
split. 0 means indistinguishable from exact unlearning on these four numbers. The retrained reference's
values come from the same metric plugins with the same parameters, so they are computed once and cached.

The released SalUn code (OPTML-Group/Unlearn-Saliency, ``Classification/main_forget.py``) saves the four
numbers per run; the average gap itself is the paper's table column (no code computes it), so the reference
check (tests/plugins/metrics/test_avg_gap.py) reproduces the published Avg. Gap of SalUn's Table 1 (FT
3.78, GA 4.12, SalUn 1.15) and of the RURK table (2.65) from their rows. No deviation; dememo reports it as a
fraction, the papers in percent.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo


@attrs.define
class AvgGap(dememo.Metric):
    """Average gap to the paired retrain over UA, RA, TA and MIA-efficacy."""

    name: ClassVar[str] = "avg-gap"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning", "interplay")
    needs: ClassVar[tuple[str, ...]] = ("retrained",)
    uses: ClassVar[tuple[str, ...]] = ("unlearning-accuracy", "mia-efficacy")
    columns: ClassVar[dict[str, dememo.Column]] = {
        "avg_gap": dememo.Column("Avg Gap", "lower", "mean |x − x_retrain| over UA, RA, TA and MIA-efficacy "
                                 "(reference: the paired retrain, same seed and split)", plots=(
            dememo.Plot("interplay", kind="heatmap", tracks="interplay", order=13,
                        caption="the mean gap to the retrained model over forget, retain and test accuracy and MIA "
                                "efficacy (lower is closer to retraining)"),
            dememo.Plot("forgetting-utility", kind="scatter", axis="x", tracks="unlearning", order=61,
                        x="Avg Gap to retrain (%)",
                        caption="its Avg Gap to the retrained model (mean gap over forget, retain and test accuracy and "
                                "MIA efficacy)", reading="original: no unlearning; retrain: the target")),
                                 # the objective of dememo-bench tune (the validation split in place of the test split)
                                 tuning=dememo.Tuning("avg_gap", objective=True, order=5)),
    }

    def compute(self, ev, ctx):
        gaps = []
        acc, acc_r = ev.metric("unlearning-accuracy"), ev.metric("unlearning-accuracy", on="retrained")
        for key in ("forget_acc", "retain_acc", "test_acc"):
            gaps.append(abs(acc[key] - acc_r[key]))  # |UA − UA_r| = |forget_acc − forget_acc_r|
        mia, mia_r = ev.metric("mia-efficacy"), ev.metric("mia-efficacy", on="retrained")
        gaps.append(abs(mia["mia_efficacy"] - mia_r["mia_efficacy"]))
        return {"avg_gap": sum(gaps) / len(gaps)}


@dememo.hookimpl
def register_metrics(register):
    register(AvgGap)
