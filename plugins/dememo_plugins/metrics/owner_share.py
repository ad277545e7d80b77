"""``owner-share``: what a model knows of a data owner's share that was released poisoned (interplay track).

The SoK on model dememorization (arXiv 2605.11592) asks whether unlearning can *recover* knowledge hidden
by unlearnable examples, and whether unlearnability changes what unlearning achieves. On dememo's interplay
track a data owner's share of the training set (``[interplay] share``, fixed seeded positions) is released
poisoned, the model is trained on the mixture, and an unlearner is then asked to forget (the share, or a
clean forget set). This metric reads the owner's share as **clean** images, ``ev.owner_share``: the data
the poison was meant to hide, which neither the model nor the unlearner ever saw.

Columns:

- ``share_clean_acc`` = Acc(f; clean share). A model trained on the clean share would have memorized it
  (≈ 100 %); one that never saw the share generalizes to it (≈ test accuracy). The paired retrain (trained
  on the retain set only, with the same seed) is the target after the share is forgotten, so the column is
  judged by closeness to it (``match``).
- ``share_clean_gain`` = Acc(f; clean share) − Acc(f_original; clean share), with ``f_original`` the model
  trained on the mixture (``ev.reference("original")`` on this track): what unlearning (or a model-stage
  attack) changed. > 0 means the unlearned model knows the owner's clean data *better* than before
  unlearning: unlearning undid part of what the poison hid.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo


@attrs.define
class OwnerShare(dememo.Metric):
    """Accuracy on the data owner's clean share, before vs after unlearning (interplay track)."""

    name: ClassVar[str] = "owner-share"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("interplay",)
    needs: ClassVar[tuple[str, ...]] = ("original",)
    columns: ClassVar[dict[str, dememo.Column]] = {
        "share_clean_acc": dememo.Column("share clean acc", "match",
                                         "accuracy on the data owner's share as clean images (the model trained on "
                                         "them poisoned); the target is the paired retrain's value", reference="retrain"),
        "share_clean_gain": dememo.Column("share gain", "info",
                                          "share clean acc minus that of the model trained on the mixture, before "
                                          "unlearning (> 0: unlearning recovered knowledge the poison hid)",
                                          signed=True, plots=(dememo.Plot(
                                              "interplay", kind="heatmap", tracks="interplay", order=11,
                                              caption="the change in clean accuracy on the owner's share caused by "
                                                      "unlearning (after minus before; blue: unlearning gave back "
                                                      "knowledge the poison hid, red: the model knows the share less "
                                                      "than before)"),)),
    }

    def compute(self, ev, ctx):
        if ev.owner_share is None:
            raise ValueError("owner-share needs ev.owner_share: it applies to interplay cells only")
        after = ev.accuracy(ev.model, ev.owner_share)
        before = ev.accuracy(ev.reference("original"), ev.owner_share)
        return {"share_clean_acc": after, "share_clean_gain": after - before}


@dememo.hookimpl
def register_metrics(register):
    register(OwnerShare)
