"""``retrain``: the exact-unlearning oracle — train from scratch on the retain set with the suite's recipe.

It never sees the forget set (``reads_forget = False``). Through ``ctx.train`` it is the same cached stage
as the harness's ``retrained`` reference, so gaps against it are exactly zero and it is trained once.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo


@attrs.define
class Retrain(dememo.Unlearner):
    """Retrain from scratch on the retain set (exact unlearning; the reference for every gap)."""

    name: ClassVar[str] = "retrain"
    version: ClassVar[str] = "1"
    reads_forget: ClassVar[bool] = False

    def unlearn(self, model, task, ctx):
        return ctx.train(task.retain)


@dememo.hookimpl
def register_unlearners(register):
    register(Retrain)
