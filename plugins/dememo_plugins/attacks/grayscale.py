"""``grayscale``: train on grayscale copies of the training images (train stage, learner side).

Grayscale compression from Image Shortcut Squeezing (ISS; Liu, Zhao & Larson, "Image Shortcut Squeezing:
Countering Perturbative Availability Poisons with Compression", ICML 2023). Colour-channel shortcuts
(most L∞ error-minimising noise is strongly colour-coded) are squeezed out by replacing every training
image by its ITU-R BT.601 luma, replicated to all channels:

    Y = 0.299·R + 0.587·G + 0.114·B,    x' = (Y, Y, Y)

and then training a fresh model on (x', y) with the suite's recipe. Reference code:
liuzrcc/ImageShortcutSqueezing, ``augmentations.py`` (``aug_train`` with ``--grayscale``: torchvision
``Grayscale(3)`` on the 8-bit PIL images, i.e. PIL's ``convert("L")``); checked against PIL in
``tests/plugins/attacks/test_grayscale.py``. Published on CIFAR-10 / ResNet-18:
EM 21.05 % → 93.01 %, clean 94.68 % → 92.41 %, OPS 36.55 % → 42.44 %, AR 13.28 % → 34.04 %.

Choices and deviations:

- Only the *training* images are converted; the returned model is evaluated on the clean colour test
  images, as in the ISS protocol (its test transform compresses only when explicitly asked to). The
  returned model is the plain architecture (no input-converting wrapper), so its state_dict keeps the
  architecture's parameter names and shapes, which the harness checks.
- The run starts from the initial weights and batch order of the standard training on the
  untransformed data (``_learner.paired``), so attack-minus-none differences are paired.
- The luma is computed in float on [0, 1] images, without ISS's (PIL's) rounding to 8 bits: dememo
  images are float and an extra quantisation would be a second squeeze, not part of this one.
- One-channel data is returned unchanged (it is already grayscale): on such datasets this attack equals
  standard training. Data with a channel count other than 1 or 3 has no defined luma; there the
  channel mean (ISS's ``channel_mean`` variant, equal weights) is replicated instead.

Measured on noisy-shapes (small-cnn, quick recipe, test accuracy, seeds 0 / 1): clean 0.91 / 0.95 → 0.62
/ 0.65 (its class templates differ per colour channel, which luma partly merges), EM 0.25 / 0.24 → 0.27
/ 0.43, OPS 0.45 / 0.65 → 0.54 / 0.51.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

import dememo

from ._learner import paired, train_standard, with_transformed_images

#: ITU-R BT.601 luma weights for (R, G, B), as in PIL's ``convert("L")``
LUMA = (0.299, 0.587, 0.114)


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """N×C×H×W images → the same shape with every channel equal to the luma (C = 3) or the channel mean
    (C ∉ {1, 3}); one-channel images are returned as they are."""
    c = x.shape[1]
    if c == 1:
        return x
    if c == 3:
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        y = (x * w).sum(dim=1, keepdim=True)
    else:
        y = x.mean(dim=1, keepdim=True)
    return y.expand_as(x).clamp(0, 1).contiguous()


@attrs.define
class Grayscale(dememo.Attack):
    """Grayscale compression (ISS, Liu et al. ICML 2023): train on BT.601 luma copies of the images."""

    name: ClassVar[str] = "grayscale"
    version: ClassVar[str] = "1"
    stages: ClassVar[tuple[str, ...]] = ("train",)
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability",)

    def transform(self, data: dememo.Data) -> dememo.Data:
        if data.x.shape[1] == 1:
            return data
        return with_transformed_images(data, to_grayscale(data.x), "grayscale")

    def train(self, data, ctx):
        return train_standard(self.transform(data.train), paired(ctx, data.train), data.monitor)


@dememo.hookimpl
def register_attacks(register):
    register(Grayscale)
