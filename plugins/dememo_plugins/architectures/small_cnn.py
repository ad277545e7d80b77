"""``small-cnn``: three 3×3 conv blocks with GroupNorm, global average pooling and a linear head.

GroupNorm rather than BatchNorm: no running statistics, so a model is a pure function of its weights
(evaluation equals training-mode output, and ensembles can be vectorised with ``torch.func`` later).
Inputs are centred as (x − 0.5)/0.25 inside the model, so budgets stay in [0, 1] pixel space.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
from torch import nn

import dememo


class Standardize(nn.Module):
    """Map [0, 1] pixels to roughly zero mean and unit scale: stabilises SGD on low-contrast data."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) / 0.25


def block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(min(4, cout), cout), nn.ReLU()]


@attrs.define
class SmallCNN(dememo.Architecture):
    """Three conv–GroupNorm–ReLU blocks (width w, 2w, 2w), two 2×2 max-pools, global average pool, linear."""

    name: ClassVar[str] = "small-cnn"
    version: ClassVar[str] = "1"
    width: int = 16

    def build(self, input_shape, num_classes):
        c, h, w = input_shape
        pools = [nn.MaxPool2d(2) if min(h, w) >= 4 else nn.Identity(), nn.MaxPool2d(2) if min(h, w) >= 8 else nn.Identity()]
        k = self.width
        return nn.Sequential(
            Standardize(),
            *block(c, k), pools[0],
            *block(k, 2 * k), pools[1],
            *block(2 * k, 2 * k),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * k, num_classes),
        )


@dememo.hookimpl
def register_architectures(register):
    register(SmallCNN)
