"""``cuda``: Convolution-based Unlearnable DAtaset (Sadasivan et al., "CUDA: Convolution-based Unlearnable
Datasets", CVPR 2023).

Each class k gets a random depthwise convolution filter H_k (one ``kernel_size`` × ``kernel_size``
filter per channel), and every training image of class k is replaced by its filtered, clipped version
(the paper's construction):

    x' = clip(H_y ∗ x, 0, 1),   H_k[c] ~ U[0, b]^(k×k) with one random tap set to ``center``

with blur parameter b = ``blur`` = 0.3 and ``center`` = 1.0, the paper's CIFAR-10 setting. The blur is
class-specific, so the network can tell the class from the filter's signature (which frequencies and
directions are smeared, and how much brighter the image gets) instead of from the content.

**A transform, not a bounded perturbation**: x' − x can be large anywhere in the image, so no ℓp
budget applies (``norm = "none"``); the harness checks only finite values and the [0, 1] range, and
``ctx.budget`` is not read. The blur strength is the threat-model parameter.

Choices where the paper leaves room: the filters are drawn independently per channel, each with its own
randomly placed centre tap (the paper's code offers a same-filter-for-all-channels option, not the
default used here); the filter is not normalised, so filtered images are brighter (tap sum ≈ 1 + (k² −
1)·b/2 = 2.2 in expectation) and saturate where the clip applies, as in the paper; padding is zero
("same" size), which darkens a one-pixel border. ``kernel_size`` must be odd so the output keeps the
image's size.

Measured on noisy-shapes (small-cnn, 15 epochs, seeds 0 / 1; ``tests/test_model_free_poisoners.py``):
clean test accuracy 0.930 / 0.953 after clean training, 0.063 / 0.161 after training on CUDA data
(train accuracy 1.0): at or below chance (0.1) — the model learns the class filters, not the content.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F

import dememo


@attrs.define
class ConvolutionUnlearnable(dememo.Poisoner):
    """CUDA (Sadasivan et al., CVPR 2023): class-wise random blur filters; a transform, not an ℓp budget."""

    name: ClassVar[str] = "cuda"
    version: ClassVar[str] = "1"
    norm: ClassVar[str] = "none"
    kernel_size: int = 3
    blur: float = 0.3
    center: float = 1.0

    def __attrs_post_init__(self):
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError("kernel_size must be a positive odd number")
        if self.blur < 0 or self.center < 0:
            raise ValueError("blur and center must be non-negative")

    def filters(self, num_classes: int, channels: int, ctx) -> torch.Tensor:
        """K×C×k×k: taps U[0, blur], one random tap per filter set to ``center``."""
        k, g = self.kernel_size, ctx.generator
        w = self.blur * torch.rand(num_classes, channels, k * k, generator=g, device=ctx.device)
        tap = torch.randint(0, k * k, (num_classes, channels, 1), generator=g, device=ctx.device)
        return w.scatter(2, tap, self.center).view(num_classes, channels, k, k)

    def poison(self, data, ctx):
        n, (c, h, w) = len(data), data.shape
        if n == 0:
            return data.x.clone()
        weight = self.filters(data.num_classes, c, ctx)[data.y].to(data.x.dtype)  # each image: its class's filter
        # one depthwise convolution over all images at once: image i's channels are groups i·C … i·C + C − 1
        x = data.x.contiguous().view(1, n * c, h, w)
        out = F.conv2d(x, weight.view(n * c, 1, *weight.shape[-2:]), padding=self.kernel_size // 2, groups=n * c)
        return out.view(n, c, h, w).clamp(0, 1)


@dememo.hookimpl
def register_poisoners(register):
    register(ConvolutionUnlearnable)
