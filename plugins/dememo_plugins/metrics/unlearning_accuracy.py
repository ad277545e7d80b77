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


@attrs.define
class UnlearningAccuracy(dememo.Metric):
    """Forget / retain / test accuracy (UA = 1 − forget acc, RA, TA)."""

    name: ClassVar[str] = "unlearning-accuracy"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning", "interplay")
    columns: ClassVar[dict[str, dememo.Column]] = {
        "forget_acc": dememo.Column("forget acc", "match", "accuracy on the forget set (1 − UA); the target is the "
                                    "paired retrain's value", reference="retrain"),
        "retain_acc": dememo.Column("RA", "higher", "accuracy on the retain set"),
        "test_acc": dememo.Column("TA", "higher", "accuracy on the test set"),
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
