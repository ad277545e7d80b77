"""``clean-accuracy``: accuracy on the clean test set of a model trained on (possibly poisoned) data.

The headline number of the unlearnability literature (e.g. Huang et al., ICLR 2021, Table 1). From the
data owner's side lower is better: the released data taught the model little. ``train_acc`` is the
accuracy on the (poisoned) training data the model saw: high train and low test accuracy together show a
shortcut was learned instead of the task.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo


@attrs.define
class CleanAccuracy(dememo.Metric):
    """Clean test accuracy (final) and accuracy on the (poisoned) training data."""

    name: ClassVar[str] = "clean-accuracy"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability",)
    columns: ClassVar[dict[str, dememo.Column]] = {
        "test_acc": dememo.Column("TA", "lower", "accuracy on the clean test set (final epoch)",
                                  long_label="clean test accuracy"),
        "train_acc": dememo.Column("train acc", "info", "accuracy on the training data as released (poisoned)",
                                   long_label="training accuracy"),
    }

    def compute(self, ev, ctx):
        return {"test_acc": ev.accuracy(ev.model, ev.splits.test), "train_acc": ev.accuracy(ev.model, ev.train_data)}


@dememo.hookimpl
def register_metrics(register):
    register(CleanAccuracy)
