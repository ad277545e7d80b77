"""``unlearning-accuracy``: forget, retain and test accuracy of an unlearned model (UA = 1 − forget acc,
RA, TA in SalUn, Fan et al., ICLR 2024).

Forget accuracy is judged by closeness to the paired retrained model (same seed, same split): exact
unlearning does not drive it to zero, it drives it to what a model that never saw the data achieves.

As in the released SalUn code (OPTML-Group/Unlearn-Saliency, ``Classification/main_forget.py``, which runs
``trainer/val.py``'s ``validate`` on the retain, forget, val and test loaders): top-1 accuracy with the model
in evaluation mode. No deviation (dememo reports forget accuracy; UA = 1 − it).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo


#: the report's forgetting-vs-utility scatter (unlearning track): forgetting as the distance to retrain's forget
#: accuracy (a ``match`` column: paired by seed), utility as test accuracy; and the interplay heat map of TA
FORGETTING = dememo.Plot(
    "forgetting-utility", kind="scatter", axis="x", tracks="unlearning", order=60,
    x="|forget acc − retrain's forget acc| (percentage points)",
    caption="the absolute difference between its forget-set accuracy and the retrained model's (same seed): 0 "
            "forgets exactly as much as retraining",
    reading="original: no unlearning; retrain: the target, at x = 0")
UTILITY = (
    dememo.Plot("forgetting-utility", kind="scatter", axis="y", tracks="unlearning", order=60,
                title="forgetting vs utility", y="clean test accuracy (%)", caption="its clean test accuracy",
                reading="Best is top left (forgets like retraining and stays useful)."),
    dememo.Plot("interplay", kind="heatmap", tracks="interplay", order=12,
                caption="clean test accuracy of the unlearned model (higher keeps the model useful)"),
)

@attrs.define
class UnlearningAccuracy(dememo.Metric):
    """Forget / retain / test accuracy (UA = 1 − forget acc, RA, TA)."""

    name: ClassVar[str] = "unlearning-accuracy"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning", "interplay")
    columns: ClassVar[dict[str, dememo.Column]] = {
        "forget_acc": dememo.Column("forget acc", "match", "accuracy on the forget set (1 − UA); the target is the "
                                    "paired retrain's value", reference="retrain", long_label="forget-set accuracy",
                                    plots=(FORGETTING,), tuning=dememo.Tuning("forget_acc", order=1)),
        "retain_acc": dememo.Column("RA", "higher", "accuracy on the retain set", long_label="retain-set accuracy",
                                    tuning=dememo.Tuning("retain_acc", order=2)),
        "test_acc": dememo.Column("TA", "higher", "accuracy on the test set", long_label="clean test accuracy",
                                  plots=UTILITY, tuning=dememo.Tuning("val_acc", order=3)),
    }

    def compute(self, ev, ctx):
        return {
            "forget_acc": ev.accuracy(ev.model, ev.task.forget),
            "retain_acc": ev.accuracy(ev.model, ev.task.retain),
            "test_acc": ev.accuracy(ev.model, ev.splits.test),
        }


@dememo.hookimpl
def register_metrics(register):
    register(UnlearningAccuracy)
