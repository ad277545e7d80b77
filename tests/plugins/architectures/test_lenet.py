"""``lenet`` (plugins/dememo_plugins/architectures/lenet.py): LeNet-5's feature maps and size, its input
checks, and that it learns the shipped real digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dememo.context import Context, seeded_generator
from dememo.training import Recipe, accuracy
from dememo_plugins.architectures.lenet import LeNet
from dememo_plugins.datasets.mnist10k import Mnist10k


@pytest.mark.reference("architecture", "lenet", source="paper: Gradient-based learning applied to document recognition (LeCun et al. 1998), Fig. 2")
def test_feature_maps_are_lenet5s_on_28x28_digits():
    """C1 6@28×28, S2 6@14×14, C3 16@10×10, S4 16@5×5, C5 120, F6 84, 10 outputs (the paper's Fig. 2, with
    28×28 inputs padded by the convolution instead of to 32×32), 61,706 parameters with full C3 connections."""
    model = LeNet().build((1, 28, 28), 10)
    shapes = []
    for module in model:
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.Linear)):
            module.register_forward_hook(lambda m, i, out: shapes.append(tuple(out.shape[1:])))
    model(torch.rand(2, 1, 28, 28))
    assert shapes == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120,), (84,), (10,)]
    # C1 6·(25+1), C3 16·(6·25+1), C5 120·(400+1), F6 84·(120+1), output 10·(84+1)
    assert sum(p.numel() for p in model.parameters()) == 156 + 2416 + 48120 + 10164 + 850 == 61706


@pytest.mark.parametrize("shape, classes, s4", [((3, 32, 32), 10, 576), ((1, 12, 12), 2, 16), ((1, 28, 20), 5, 240)])
def test_other_image_sizes_and_class_counts_build(shape, classes, s4):
    model = LeNet().build(shape, classes)
    assert model(torch.rand(3, *shape)).shape == (3, classes)
    assert [m for m in model if isinstance(m, nn.Linear)][0].in_features == s4


def test_images_below_12_pixels_are_refused_in_one_line():
    with pytest.raises(ValueError, match="at least 12×12 pixels.*got 8×8; use mlp or small-cnn"):
        LeNet().build((1, 8, 8), 10)


def test_learns_the_real_digits_in_two_epochs():
    """Two epochs on mnist-10k's 7,000 training digits (one thread, ~3 s): well above chance on its test split
    (measured at seed 0: 94.7 %; 8 epochs 97.3 %)."""
    splits = Mnist10k().load(None, False)
    ctx = Context(device=torch.device("cpu"), seed=0, generator=seeded_generator(0, torch.device("cpu")),
                  recipe=Recipe(epochs=2, batch_size=128, lr=0.05, momentum=0.9, schedule="onecycle"),
                  architecture=LeNet(), input_shape=splits.shape, num_classes=splits.num_classes)
    model = ctx.train(splits.train)
    assert accuracy(model, splits.test) > 0.85
