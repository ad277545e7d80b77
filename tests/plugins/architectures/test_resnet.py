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


def reference_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The CIFAR ResNet-18 of the unlearnable-examples code (HanxunH/Unlearnable-Examples, models/ResNet.py:
    ``ResNet(BasicBlock, [2, 2, 2, 2])``), its forward transcribed as functional calls on ``model``'s weights
    taken in the order that network defines them: a 3×3 stride-1 stem of 64 channels with BatchNorm and ReLU
    (no max-pool); four stages of 64/128/256/512 planes with strides 1/2/2/2 of two BasicBlocks each (3×3
    conv, stride on the first, BN, ReLU, 3×3 conv, BN, plus the input or a 1×1 strided conv + BN projection
    where the stride or width changes, then ReLU); a 4×4 average pool and one linear layer. Evaluation mode
    (running statistics). ``model`` is dememo's ``resnet18`` (its Normalize first: dememo's stated deviation)."""
    import torch.nn.functional as F

    convs = iter(m for m in model.modules() if isinstance(m, nn.Conv2d))
    bns = iter(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    linear = next(m for m in model.modules() if isinstance(m, nn.Linear))

    def conv_bn(h, stride, padding):
        c, b = next(convs), next(bns)
        h = F.conv2d(h, c.weight, None, stride, padding)
        return F.batch_norm(h, b.running_mean, b.running_var, b.weight, b.bias, False, 0.0, b.eps)

    h = F.relu(conv_bn(model[0](x), 1, 1))
    planes_in = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for s in (stride, 1):
            out = F.relu(conv_bn(h, s, 1))
            out = conv_bn(out, 1, 1)
            shortcut = conv_bn(h, s, 0) if s != 1 or planes_in != planes else h
            h, planes_in = F.relu(out + shortcut), planes
    h = F.avg_pool2d(h, 4).flatten(1)
    return F.linear(h, linear.weight, linear.bias)


@pytest.mark.reference("architecture", "resnet18", source="HanxunH/Unlearnable-Examples:models/ResNet.py")
def test_resnet18_computes_the_unlearnable_examples_network():
    """Every weight of dememo's resnet18 is where the papers' CIFAR ResNet-18 uses it: the reference forward
    (transcribed above) on the same weights gives the same logits, with running statistics that are not the
    defaults (so a BatchNorm applied to the wrong convolution shows), and the layers' shapes and strides are
    the reference's (a 7×7 stem, a missing projection or a stride on the wrong convolution fails)."""
    torch.manual_seed(1)
    model = build(ResNet18(), (3, 32, 32), 10).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        x = torch.rand(4, 3, 32, 32)
        assert torch.allclose(model(x), reference_forward(model, x), atol=1e-5, rtol=1e-4)
    shapes = [(tuple(m.weight.shape), m.stride) for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert shapes[0] == ((64, 3, 3, 3), (1, 1)) and len(shapes) == 1 + 8 * 2 + 3
    assert [s for s in shapes if s[0][2:] == (1, 1)] == [((128, 64, 1, 1), (2, 2)), ((256, 128, 1, 1), (2, 2)),
                                                        ((512, 256, 1, 1), (2, 2))]
