"""``original``: no unlearning — the model trained on all data, the upper reference for what is known."""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo


@attrs.define
class Original(dememo.Unlearner):
    """No-op: return the original model (reference row)."""

    name: ClassVar[str] = "original"
    version: ClassVar[str] = "1"
    reads_forget: ClassVar[bool] = False

    def unlearn(self, model, task, ctx):
        return model


@dememo.hookimpl
def register_unlearners(register):
    register(Original)
