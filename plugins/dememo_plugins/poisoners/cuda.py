"""``cuda``: Convolution-based Unlearnable DAtaset (Sadasivan et al., "CUDA: Convolution-based Unlearnable
Datasets", CVPR 2023).

Each class k gets one random ``kernel_size`` × ``kernel_size`` filter H_k, applied to every channel of
every training image of class k (a depthwise convolution whose channels share the filter); each filtered
image is then divided by its own maximum (the construction of the authors' ``get_filter_unlearnable``):

    x' = (H_y ∗ x) / max(H_y ∗ x),   H_k ~ U[0, b]^(k×k) with one tap, at a uniformly random position, set to c

with blur parameter b = ``blur`` = 0.3, c = ``center`` = 1.0 and k = 3, the paper's CIFAR-10 setting. The
blur is class-specific, so the network can tell the class from the filter's signature (which directions
are smeared) instead of from the content. Taps and images are non-negative, so x' lies in [0, 1] with
its brightest value exactly 1: the division, not a clip, keeps the range, and no pixel saturates beyond
that one (the per-image maximum). The filter is the same for all channels, so a grey image stays grey:
CUDA adds no class colour cast.

Follows the authors' code, github.com/vinusankars/Convolution-based-Unlearnability,
``final_filter_unlearnable.py`` (``get_filter_unlearnable``: taps ``np.random.uniform(0, blur)``, one
tap at ``(randint(k), randint(k))`` set to ``center_parameter``, channel 0's filter copied to channels 1
and 2, ``Conv2d(..., groups=3, padding=1)`` with zero bias, then ``img / img.max()``).

**A transform, not a bounded perturbation**: x' − x can be large anywhere in the image, so no ℓp
budget applies (``norm = "none"``); the harness checks only finite values and the [0, 1] range, and
``ctx.budget`` is not read. The blur strength is the threat-model parameter.

Deviations from the released code: the output stays float (the code stores ×255, clips and truncates to
uint8, a change of < 1/255); randomness comes from ``ctx.generator`` rather than NumPy's global seed;
padding is ``kernel_size // 2`` zeros (the code's ``padding=1`` is that for its k = 3, and keeps the
size for any odd k); an image whose filtered version is all zero (an all-black image) stays all zero,
where the code would divide 0 by 0. The code's ``grayscale``, ``same`` (one filter for all classes) and
``mix`` options are not offered (``mix`` is the harness's ``ratio``). ``kernel_size`` must be odd.

Version 1 drew an independent filter per channel and hard-clipped the unnormalised output: that
saturated 53 % of noisy-shapes' values (now 0.13 %, one per image) and gave each class a colour cast.

Measured on noisy-shapes (small-cnn, 15 epochs, seeds 0 / 1; ``tests/plugins/poisoners/test_cuda.py``):
clean test accuracy 0.920 / 0.956 after clean training, 0.100 / 0.098 after training on CUDA data
(train accuracy 1.0 / 0.98): chance (0.1) — the model learns the class filters, not the content, and
predicts (almost) a single class on clean images.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F

import dememo
from dememo import validate


@attrs.define
class ConvolutionUnlearnable(dememo.Poisoner):
    """CUDA (Sadasivan et al., CVPR 2023): class-wise random blur filters; a transform, not an ℓp budget."""

    name: ClassVar[str] = "cuda"
    version: ClassVar[str] = "2"
    norm: ClassVar[str] = "none"
    kernel_size: int = 3
    blur: float = 0.3
    center: float = 1.0

    def __attrs_post_init__(self):
        validate.at_least(1, kernel_size=self.kernel_size)
        if self.kernel_size % 2 == 0:  # a parity rule, used here only
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        validate.non_negative(blur=self.blur, center=self.center)

    def filters(self, num_classes: int, ctx) -> torch.Tensor:
        """K×k×k, one filter per class shared by all channels: taps U[0, blur], one random tap set to ``center``."""
        k, g = self.kernel_size, ctx.generator
        w = self.blur * torch.rand(num_classes, k * k, generator=g, device=ctx.device)
        tap = torch.randint(0, k * k, (num_classes, 1), generator=g, device=ctx.device)
        return w.scatter(1, tap, self.center).view(num_classes, k, k)

    def poison(self, data, ctx):
        n, (c, h, w) = len(data), data.shape
        if n == 0:
            return data.x.clone()
        k = self.kernel_size
        weight = self.filters(data.num_classes, ctx)[data.y].to(data.x.dtype)  # each image: its class's filter
        weight = weight.repeat_interleave(c, dim=0).view(n * c, 1, k, k)  # the same filter on every channel
        # one depthwise convolution over all images at once: image i's channels are groups i·C … i·C + C − 1
        out = F.conv2d(data.x.contiguous().view(1, n * c, h, w), weight, padding=k // 2, groups=n * c).view(n, c, h, w)
        peak = out.flatten(1).amax(1).view(n, 1, 1, 1)
        # each image divided by its own maximum; an all-zero result (black image) has nothing to scale
        out = out / torch.where(peak > 0, peak, torch.ones_like(peak))
        return out.clamp(0, 1)  # a no-op up to rounding: taps and pixels are non-negative


@dememo.hookimpl
def register_poisoners(register):
    register(ConvolutionUnlearnable)
