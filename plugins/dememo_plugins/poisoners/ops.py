"""``ops``: One-Pixel Shortcut (Wu et al., "One-Pixel Shortcut: on the Learning Preference of Deep
Neural Networks", ICLR 2023).

Per class k, one pixel position σ_k and one extreme colour ξ_k ∈ {0, 1}^C are chosen, and every training
image of class k gets that pixel set to that colour. The choice maximises how much, and how consistently,
the pixel changes over the class's images (the paper's search objective):

    (σ_k, ξ_k) = argmax_{(σ, ξ) not taken by classes 0 … k−1}  mean(D_k(σ, ξ)) / std(D_k(σ, ξ)),
    D_k(σ, ξ) = { |ξ_c − x_i[c, σ]| : y_i = k, c = 1 … C }

where the mean and the (population) standard deviation run over the n_k · C values of D_k — every image
*and channel* of the class, as the authors compute it — so the new pixel value is far from what the class
usually has there (a large change) and the change is the same for all its images (a small spread): a
feature the network finds faster than the content. Classes are searched in label order, and a (position,
colour) pair chosen by an earlier class is excluded for the later ones, so no two classes share a key.
The search is exhaustive over all H·W positions and all 2^C colours; there is no randomness, so the
output does not depend on the seed.

Follows the authors' code, github.com/cychomatica/One-Pixel-Shotcut, ``perturb.py`` (``pixel_search``:
the score array over H·W positions × 2^C colours, colour bits with channel 0 most significant,
``np.mean / np.std`` of ``|colour − img_class_i[:, x, y, :]|``, pairs already in ``pts`` excluded).

Deviations from the released code, all where it is undefined or degenerate (none arises on natural
images such as CIFAR-10, where no pixel is constant over a class):

- a zero spread (every value of D_k equal) scores +∞ if the change is non-zero, as NumPy's division
  gives, and 0 if it is zero; NumPy gives NaN there, which its ``argsort`` ranks above every number, so
  the code would choose a pixel that changes nothing (on ``digits``, whose corners are always black,
  it does: class 0, grey copied to three channels, gets a black pixel where every image is black);
- ties go to the first position in raster order, then the first colour in binary order (the code takes
  the last of an unstable ``argsort``, which is arbitrary among ties); an excluded pair scores −∞ (the
  code gives it 0, which matters only when every remaining pair scores 0);
- any number of classes and non-square images (the code loops over 10 classes and indexes with H for
  both coordinates); classes without images take no key; the pixel is set directly (the code returns
  the perturbation colour − x, to be added).

Budget: L0 counts pixel positions (all channels of one position count once, ``dememo.budget``); the
paper's budget is one pixel, the dataset's ``l0`` radius (1). With ε < 1 no pixel may change and the
images are returned unchanged; a larger ε still changes one pixel (the code's ``sparsity = 1``).

Version 1 summed |ξ − x| over channels before the mean/std and did not exclude taken pairs, so on
``digits`` all ten classes set pixel 0 to white, which carries no class information.

Measured on noisy-shapes (small-cnn, 15 epochs, L0 1, seeds 0 / 1; ``tests/plugins/poisoners/test_ops.py``):
clean test accuracy 0.920 / 0.956 after clean training, 0.641 / 0.674 after training on OPS data: one
pixel per image removes about 0.3 of the accuracy, a smaller drop than on CIFAR-10 (94.7 → 36.6 with
ResNet-18). On digits (mlp, the quick suite's recipe, seeds 0–7;
``tests/plugins/poisoners/test_ops.py``): 0.967–0.974 clean, 0.929–0.948 with OPS (version 1:
0.965–0.972, no drop): the digits are learned about as fast as the pixel, so the shortcut only takes
0.02–0.04.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import attrs
import torch

import dememo


def extreme_colours(channels: int, device) -> torch.Tensor:
    """All 2^C corners of the colour cube in binary order, channel 0 the most significant bit: 2^C × C."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=channels)), device=device)


def pixel_scores(x: torch.Tensor, chunk: int = 2**20) -> torch.Tensor:
    """OPS's objective for one class's images x (n×C×H×W): an (H·W)×2^C array of mean/std of |ξ − x| over
    the class's images and channels at each position, for each corner colour ξ (float64, as NumPy)."""
    n, c = x.shape[:2]
    colours = extreme_colours(c, x.device).double()
    flat = x.flatten(2)
    scores = []
    step = max(1, chunk // (n * c))  # positions per chunk: bounds the 2^C × n·C × step intermediate
    for start in range(0, flat.shape[2], step):
        part = flat[:, :, start : start + step].double()
        d = (colours[:, None, :, None] - part[None]).abs().flatten(1, 2)  # 2^C × (n·C) × positions
        spread, mean = torch.std_mean(d, dim=1, correction=0)
        constant = d.amax(1) == d.amin(1)  # exactly zero spread: not left to rounding in std
        degenerate = torch.where(mean > 0, torch.full_like(mean, float("inf")), torch.zeros_like(mean))
        scores.append(torch.where(constant, degenerate, mean / spread).T)
    return torch.cat(scores)


@attrs.define
class OnePixelShortcut(dememo.Poisoner):
    """One-Pixel Shortcut (Wu et al., ICLR 2023): per class one pixel set to an extreme colour, L0 = 1."""

    name: ClassVar[str] = "ops"
    version: ClassVar[str] = "2"
    norm: ClassVar[str] = "l0"

    def search(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        """Per class, the flat pixel position (K) and colour (K×C) that maximise mean/std of the change,
        among the (position, colour) pairs not taken by a class with a smaller label."""
        c = data.shape[0]
        colours = extreme_colours(c, data.device).to(data.x.dtype)
        position = torch.zeros(data.num_classes, dtype=torch.int64, device=data.device)
        colour = torch.zeros(data.num_classes, c, dtype=data.x.dtype, device=data.device)
        taken: list[int] = []  # flat indices into the positions × colours score array
        for k in range(data.num_classes):  # in label order: earlier classes choose first
            xk = data.x[data.y == k]
            if len(xk) == 0:
                continue
            score = pixel_scores(xk).flatten()  # position-major, as the authors' H·W × 2^C array
            score[taken] = float("-inf")
            best = int(score.argmax())  # the first maximum: raster order, then binary colour order
            taken.append(best)
            position[k], colour[k] = best // len(colours), colours[best % len(colours)]
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
