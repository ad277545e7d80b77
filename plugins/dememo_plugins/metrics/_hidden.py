"""What a model is meant *not* to know, per track, shared by the depth and certificate metrics.

The SoK on model dememorization (arXiv 2605.11592) reads both kinds of dememorization the same way: some
accuracy is hidden (unlearnable examples hide the clean task; unlearning hides the forget set), and an
attack that brings it back shows the hiding was shallow.

- unlearnability track: the hidden accuracy is **clean test accuracy**; its level is that of the model
  trained on the clean data (``clean`` reference) and its floor 0 (all of it was to be hidden).
- unlearning track: the hidden accuracy is **forget-set accuracy**; its level is the original model's
  and its floor the paired retrain's (what a model that never saw the forget set achieves anyway: on a
  random forget set that is most of the original's accuracy, so only the memorized part is hidden).
"""

from __future__ import annotations

import attrs

import dememo

#: references read on each track (``Metric.needs`` of a metric built on ``hidden``)
NEEDS = {"unlearnability": ("clean",), "unlearning": ("original", "retrained")}


@attrs.frozen
class Hidden:
    data: dememo.Data
    #: what ``data`` is, for messages and docs
    what: str
    #: the accuracy the dememorizer set out to hide (the model that was never dememorized)
    level: float
    #: the accuracy that stays anyway (a model that never saw the data)
    floor: float

    def target(self, fraction: float) -> float:
        """The accuracy at which the hidden knowledge counts as back: ``floor + fraction·(level − floor)``."""
        return self.floor + fraction * (self.level - self.floor)


def hidden_data(ev: dememo.Evaluation) -> tuple[dememo.Data, str]:
    """The data whose accuracy is hidden, and what it is: the clean test set (unlearnability) or the forget
    set (unlearning)."""
    if ev.track == "unlearnability":
        return ev.splits.test, "clean test set"
    if ev.track == "unlearning" and ev.task is not None:
        return ev.task.forget, "forget set"
    raise ValueError(f"no hidden accuracy is defined on the {ev.track!r} track")


def hidden(ev: dememo.Evaluation) -> Hidden:
    """The hidden data, level and floor of the cell ``ev`` evaluates (see the module docstring)."""
    data, what = hidden_data(ev)
    if ev.track == "unlearnability":
        return Hidden(data, what, ev.accuracy(ev.reference("clean"), data), 0.0)
    return Hidden(data, what, ev.accuracy(ev.reference("original"), data), ev.accuracy(ev.reference("retrained"), data))
