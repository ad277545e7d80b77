"""``mlp``: a two-hidden-layer ReLU perceptron for small images (flattened input)."""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
from torch import nn

import dememo
from dememo_plugins.architectures.small_cnn import Standardize


@attrs.define
class MLP(dememo.Architecture):
    """Two-hidden-layer ReLU MLP on flattened pixels (inputs centred as (x − 0.5)/0.25)."""

    name: ClassVar[str] = "mlp"
    version: ClassVar[str] = "1"
    hidden: int = 256

    def build(self, input_shape, num_classes):
        d = math.prod(input_shape)
        return nn.Sequential(
            Standardize(), nn.Flatten(),
            nn.Linear(d, self.hidden), nn.ReLU(),
            nn.Linear(self.hidden, self.hidden), nn.ReLU(),
            nn.Linear(self.hidden, num_classes),
        )


@dememo.hookimpl
def register_architectures(register):
    register(MLP)
