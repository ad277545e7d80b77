"""The small architectures (mlp, small-cnn) build for any image size and class count.

First-party datasets, architectures and methods do what their docstrings and papers say.
"""

from __future__ import annotations

import pytest
import torch

from dememo_plugins.architectures.mlp import MLP
from dememo_plugins.architectures.small_cnn import SmallCNN


@pytest.mark.parametrize("shape, classes", [((1, 8, 8), 10), ((3, 16, 16), 7), ((3, 32, 32), 100), ((1, 28, 28), 2)])
@pytest.mark.parametrize("arch", [MLP(), SmallCNN()])
def test_architectures_build_for_any_image_size_and_class_count(arch, shape, classes):
    model = arch.build(shape, classes)
    assert model(torch.rand(4, *shape)).shape == (4, classes)
