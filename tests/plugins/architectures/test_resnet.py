"""The ``resnet18`` architecture (plugins/dememo_plugins/architectures/resnet.py): behaviour tests and reference checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dememo_plugins.architectures.resnet import ResNet18

from support.architectures import build


def test_resnet18_cifar_stem_and_parameter_count():
    model = build(ResNet18(), (3, 32, 32), 10)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    net = model[1]
    stem = net.conv1
    assert (stem.in_channels, stem.kernel_size, stem.stride, stem.padding) == (3, (3, 3), (1, 1), (1, 1))
    assert isinstance(net.maxpool, nn.Identity)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert build(ResNet18(), (1, 28, 28), 10)[1].conv1.in_channels == 1
    # the stem keeps the resolution: the first stage sees 32×32 maps
    seen = {}
    net.layer1.register_forward_hook(lambda m, i, o: seen.update(layer1=o.shape))
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, 32, 32))
    assert seen["layer1"][-2:] == (32, 32)


def test_resnet18_normalises_inside_the_model():
    model = build(ResNet18(mean=0.25, std=0.5), (3, 16, 16), 10)
    assert (model[0].mean, model[0].std) == (0.25, 0.5)
    with pytest.raises(ValueError, match="std"):
        ResNet18(std=0.0)
