"""``early-stop``: standard training, keeping the epoch with the best accuracy on the learner's holdout set.

Several availability poisons only *delay* learning: test accuracy rises for a few epochs before the
shortcut takes over, which is why the unlearnability literature reports peak as well as final accuracy
(REFERENCES.md, protocol lessons); accuracy that is reached and then buried is an instance of the SoK's
shallow dememorization (arXiv 2605.11592).
The realistic defender cannot read the test set, but it can hold out a small clean labelled set:

    e* = argmax_e  acc(θ_e, holdout),   return θ_{e*}

where θ_e are the weights after epoch e of one standard training run (suite recipe, full schedule).
That run is *the* standard run of the ``none`` cell on the same data and seed (same generator, see
``_learner.paired``): early-stop returns one of its checkpoints, so its accuracy is directly comparable
with that cell's final and peak accuracy.
``holdout`` is ``LearnerData.holdout`` (the dataset's validation split). Ties go to the earliest epoch.
No released code defines this defence; the definition above (from the SoK's learner-side attacks and
REFERENCES.md) is checked against an independent argmax over a replayed run's checkpoints in
``tests/plugins/attacks/test_early_stop.py``.

This is the realistic counterpart of the ``peak-accuracy`` metric, which reports the oracle peak *test*
accuracy over the same kind of run; the gap between the two is what choosing on a small holdout costs.

The returned history is the fit's (per-epoch test accuracy from ``data.monitor``, for reporting only),
with each epoch's holdout accuracy added as ``holdout_acc``; the monitor is never used for the choice.
Cost: one standard training plus one holdout evaluation per epoch.

Poison figures in this paragraph predate issue 17's fixes (CUDA, OPS and class-wise EM version 1; sample-wise
EM is unchanged): the README's quick-suite tables have the current versions' values.
Measured on noisy-shapes (small-cnn, quick recipe; test accuracy, seeds 0 / 1): clean 0.91 / 0.95 (last
epoch chosen), EM 0.25 / 0.24 (EM is not a delaying poison here: the peak is the end), OPS final 0.45 /
0.65 → early-stop 0.58 / 0.76 (epochs 8 / 10 chosen), equal to the oracle peak test accuracy.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import attrs

import dememo

from ._learner import paired, train_standard


@attrs.define
class EarlyStop(dememo.Attack):
    """Early stopping on the learner's clean holdout: keep the best-holdout-accuracy epoch's weights."""

    name: ClassVar[str] = "early-stop"
    version: ClassVar[str] = "1"
    stages: ClassVar[tuple[str, ...]] = ("train",)
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability",)

    def train(self, data, ctx):
        if len(data.holdout) == 0:
            raise ValueError("early-stop needs a non-empty holdout set to choose an epoch")
        best = {"acc": -1.0, "epoch": 0, "state": None}
        accs: list[float] = []

        def on_epoch(model, epoch):
            acc = ctx.accuracy(model, data.holdout)
            accs.append(acc)
            if acc > best["acc"]:
                best.update(acc=acc, epoch=epoch, state=copy.deepcopy(model.state_dict()))

        model, history = train_standard(data.train, paired(ctx, data.train), data.monitor, after_epoch=on_epoch)
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        model.eval()
        for record, acc in zip(history.epochs, accs):
            record["holdout_acc"] = acc
            record["chosen"] = float(record["epoch"] == best["epoch"])
        return model, history


@dememo.hookimpl
def register_attacks(register):
    register(EarlyStop)
