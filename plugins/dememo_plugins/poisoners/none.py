"""``none``: release the data unchanged — the clean reference row of the unlearnability track."""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo


@attrs.define
class NoPoison(dememo.Poisoner):
    """No poison: the clean training data (reference row)."""

    name: ClassVar[str] = "none"
    version: ClassVar[str] = "1"
    norm: ClassVar[str] = "linf"

    def poison(self, data, ctx):
        return data.x.clone()


@dememo.hookimpl
def register_poisoners(register):
    register(NoPoison)
