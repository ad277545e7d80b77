"""``random-noise``: uniform noise δ ~ U[−ε, ε], the sanity baselines of Huang et al. (ICLR 2021, §4.1).

- ``mode="sample"``: an independent δ_i per training sample. Harmless: a network cannot learn a
  per-sample pattern it sees once per epoch as a class cue, so clean accuracy stays near clean training.
- ``mode="class"``: one δ_c per class, added to every sample of class c — a fixed, learnable
  shortcut, so it can already hurt clean accuracy (the paper's class-wise random noise).

Poisoned image: clip(x + δ, 0, 1); clipping after the addition keeps ‖x' − x‖∞ ≤ ε.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs

import dememo


@attrs.define
class RandomNoise(dememo.Poisoner):
    """Uniform random noise U[−ε, ε], sample-wise (harmless) or class-wise (a shortcut)."""

    name: ClassVar[str] = "random-noise"
    version: ClassVar[str] = "1"
    norm: ClassVar[str] = "linf"
    mode: Literal["sample", "class"] = "sample"

    def poison(self, data, ctx):
        rows = len(data) if self.mode == "sample" else data.num_classes
        delta = ctx.budget.uniform((rows, *data.shape), ctx.generator)
        if self.mode == "class":
            delta = delta[data.y]  # indexed by label: one pattern per class
        return (data.x + delta).clamp(0, 1)


@dememo.hookimpl
def register_poisoners(register):
    register(RandomNoise)
