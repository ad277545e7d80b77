"""``resnet18``: torchvision's ResNet-18 with the CIFAR stem, the network of the unlearnable-examples and
unlearning papers.

Huang et al. (ICLR 2021, error-minimising noise) and the unlearning papers that dememo's tables quote (SalUn,
arXiv 2310.12508; RURK; RUM) train a ResNet-18 whose stem is adapted to 32×32 images: the first
convolution is 3×3 with stride 1 and padding 1 (ImageNet's is 7×7, stride 2) and there is no max-pool after
it, so the four stages see 32, 16, 8 and 4 pixels. Everything else is torchvision's ``resnet18``: BasicBlocks
[2, 2, 2, 2] with widths 64/128/256/512, BatchNorm after every convolution, 1×1 projection shortcuts where
the shape changes, global average pooling and one linear head (``fc``, the model's last ``nn.Linear`` and
its output, as ``dememo.models`` expects), with torchvision's initialisation (Kaiming-normal convolutions,
BatchNorm weight 1 and bias 0). With 3 input channels and 10 classes it has 11,173,962 parameters, the
count usually reported for the hand-written CIFAR ResNet-18 that those papers' code uses (same blocks); the
reference check runs that network's forward (HanxunH/Unlearnable-Examples, ``models/ResNet.py``) on this
model's weights and gets the same logits (its 4×4 average pool is this model's global one on 32×32 inputs).

Choices:

- **Any input**: the stem takes C channels (1 for MNIST), and global average pooling makes the head
  independent of the image size; images of 8×8 pixels or more are meant (the three stride-2 stages then
  leave at least 1×1). Images smaller than 8×8 are refused.
- **Normalisation inside the model**: inputs are [0, 1] pixels and the model first computes
  (x − ``mean``)/``std`` (defaults 0.5 and 0.25, the same for every dataset and channel, as dememo's other
  architectures), so poison budgets and attack radii stay in pixel space. The papers normalise with
  per-channel CIFAR statistics in the data pipeline: the two differ by a per-channel affine map of the input,
  which the first convolution and the BatchNorm after it absorb (the same functions; optimisation differs
  slightly).
- **No ``width`` parameter**: torchvision's ResNet fixes the stem and stage widths of BasicBlock networks at
  64·2^k (its ``width_per_group`` applies to Bottleneck blocks only), so a width other than 64 would need a
  re-implementation rather than torchvision's model.
- **BatchNorm**: running statistics (momentum 0.1) are updated in training mode and used in evaluation mode.
  ``dememo.ensemble`` (``ctx.train_many``) refuses models with BatchNorm: ``fit_many`` calls
  ``check_vectorizable`` before it chooses a backend (so the ``loop`` backend is refused too) and
  ``Ensemble.stack`` does the same, with a ``ValueError`` that names the layer. The many-model metrics that
  train ensembles (``u-lira``, ``forget-quality``, ``memorization``) therefore do not run on this
  architecture; the ``cifar10`` suite leaves them out.
- **No data augmentation**: dememo's standard training loop has none (the papers train with random crops
  and flips), so clean accuracy is below the papers' ≈ 94–95 % with the same recipe.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
from torch import nn

import dememo
from dememo import validate


class Normalize(nn.Module):
    """(x − mean)/std with scalar ``mean`` and ``std``: [0, 1] pixels to roughly zero mean, unit scale."""

    def __init__(self, mean: float = 0.5, std: float = 0.25):
        super().__init__()
        self.mean, self.std = float(mean), float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


def cifar_resnet18(channels: int, num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 with a 3×3, stride-1 stem convolution on ``channels`` inputs and no max-pool."""
    from torchvision.models import resnet18  # here, not at import: torchvision.models costs 1.5 s on every start

    net = resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's rule for convs
    net.maxpool = nn.Identity()
    return net


@attrs.define
class ResNet18(dememo.Architecture):
    """ResNet-18 (torchvision) with the CIFAR stem: 3×3 stride-1 first conv, no max-pool; BatchNorm; 11.2 M params."""

    name: ClassVar[str] = "resnet18"
    version: ClassVar[str] = "1"
    mean: float = 0.5
    std: float = 0.25

    def __attrs_post_init__(self) -> None:
        validate.finite(mean=self.mean)
        validate.in_range(0, math.inf, low_open=True, high_open=True, std=self.std)

    def build(self, input_shape, num_classes):
        c, h, w = input_shape
        if min(h, w) < 8:
            raise ValueError(f"resnet18 needs images of at least 8×8 pixels, got {h}×{w}")
        return nn.Sequential(Normalize(self.mean, self.std), cifar_resnet18(c, num_classes))


@dememo.hookimpl
def register_architectures(register):
    register(ResNet18)
