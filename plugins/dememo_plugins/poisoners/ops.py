"""``ops``: One-Pixel Shortcut (Wu et al., "One-Pixel Shortcut: on the Learning Preference of Deep
Neural Networks", ICLR 2023).

Per class k, one pixel position σ_k and one extreme colour ξ_k ∈ {0, 1}^C are chosen, and every training
image of class k gets that pixel set to that colour. The choice maximises how much, and how consistently,
the pixel changes over the class's images (the paper's search objective):

    (σ_k, ξ_k) = argmax_{σ, ξ}  mean_{i: y_i = k} d_i(σ, ξ) / std_{i: y_i = k} d_i(σ, ξ),
    d_i(σ, ξ) = Σ_channels |x_i[:, σ] − ξ|

so the new pixel value is far from what the class usually has there (a large change) and the change is
the same for all its images (a small spread): a feature the network finds faster than the content.
The search is exhaustive over all H·W positions and all 2^C colours, vectorised per class; there is no
randomness, so the output does not depend on the seed.

Choices where the paper leaves room: the spread is the population standard deviation (a one-image class
has spread 0); a zero spread counts as 1e-8, so a constant change wins if it is non-zero and scores 0 if
it is zero; ties go to the first colour in binary order (0…0, 0…01, …), then to the first position in
raster order. Classes without images get no pixel.

Budget: L0 counts pixel positions (all channels of one position count once, ``dememo.budget``); the
paper's budget is one pixel, the dataset's ``l0`` radius (1). With ε < 1 no pixel may change and the
images are returned unchanged; a larger ε still changes one pixel, as in the paper.

Measured on noisy-shapes (small-cnn, 15 epochs, L0 1, seeds 0 / 1; ``tests/test_model_free_poisoners.py``):
clean test accuracy 0.930 / 0.953 after clean training, 0.630 / 0.752 after training on OPS data (train
accuracy ≈ 1.0): one pixel per image removes 0.2–0.3 of the accuracy, a smaller drop than on CIFAR-10
(94.7 → 36.6 with ResNet-18).
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import attrs
import torch

import dememo


def extreme_colours(channels: int, device) -> torch.Tensor:
    """All 2^C corners of the colour cube, in binary order, 2^C × C."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=channels)), device=device)


@attrs.define
class OnePixelShortcut(dememo.Poisoner):
    """One-Pixel Shortcut (Wu et al., ICLR 2023): per class one pixel set to an extreme colour, L0 = 1."""

    name: ClassVar[str] = "ops"
    version: ClassVar[str] = "1"
    norm: ClassVar[str] = "l0"

    def search(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        """Per class, the flat pixel position (K) and colour (K×C) that maximise mean/std of the change."""
        c, h, w = data.shape
        colours = extreme_colours(c, data.device).to(data.x.dtype)
        position = torch.zeros(data.num_classes, dtype=torch.int64, device=data.device)
        colour = torch.zeros(data.num_classes, c, dtype=data.x.dtype, device=data.device)
        x = data.x.flatten(2)  # N×C×HW
        for k in range(data.num_classes):  # per class, so memory is bounded by the largest class
            xk = x[data.y == k]
            if len(xk) == 0:
                continue
            # d = Σ_ch |ξ − x| = Σ_ch x + ξ·(1 − 2x) for ξ ∈ {0, 1}: no n_k × 2^C × C × HW intermediate
            change = xk.sum(1, keepdim=True) + torch.einsum("pc,nch->nph", colours, 1 - 2 * xk)  # n_k×2^C×HW
            score = change.mean(0) / change.std(0, correction=0).clamp_min(1e-8)
            best = int(score.flatten().argmax())  # first maximum: colour-major, then raster order
            colour[k], position[k] = colours[best // (h * w)], best % (h * w)
        return position, colour

    def poison(self, data, ctx):
        out = data.x.clone()
        if ctx.budget.eps < 1:
            return out  # no pixel may change
        position, colour = self.search(data)
        w = data.shape[2]
        rows = torch.arange(len(data), device=data.device)
        pos = position[data.y]
        out[rows, :, pos // w, pos % w] = colour[data.y]  # advanced indexing: N×C, one pixel per image
        return out


@dememo.hookimpl
def register_poisoners(register):
    register(OnePixelShortcut)
