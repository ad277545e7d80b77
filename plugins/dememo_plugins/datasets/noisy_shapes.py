"""``noisy-shapes``: a generated dataset whose class signal is weak against per-sample noise.

A controlled mechanism check, not a claim about real data. Generative process (all from fixed seeds):

1. For each class k, a smooth template T_k ∈ R^{C×H×W}: a 4×4 Gaussian random field per channel,
   upsampled bicubically to H×W and standardised to unit standard deviation.
2. A sample of class y is x = clip(0.5 + c·T_y + s·n, 0, 1) with n ~ N(0, I) per pixel: contrast c and
   noise s make the per-pixel signal-to-noise ratio c/s small (default 0.025/0.1), so no single pixel
   tells the class and a network needs many epochs to average the noise away — as on CIFAR-10, and
   unlike ``digits``, where the signal is learned almost at once.

Why these numbers (measured with ``small-cnn``, 15 epochs, 2 seeds): the class signal's per-pixel
amplitude c must be comparable to the poison budget, as natural-image features are to 8/255. At
c = 0.07, s = 0.3 the template is 2.2× the L∞ budget and sample-wise EM only takes clean accuracy from
0.92 to 0.60; at c = 0.035, s = 0.15, 0.88 → 0.47; at c = 0.025, s = 0.1, 0.94 → 0.28, while
sample-wise random noise leaves it near clean. That is the regime in which error-minimising shortcuts
win, which is what this dataset exists to exercise.

Budgets: L∞ 8/255 as on CIFAR-10. L2 = 0.5 keeps CIFAR-10's per-value RMS (L2 1.0 over 3·32·32 = 3,072
values ≈ 0.018) over this dataset's 3·16·16 = 768 values: 0.018 · √768 ≈ 0.5. L0 = 1 pixel (OPS).

Labels are balanced by construction (y = i mod K before shuffling). Train, validation and test draw
independent noise from separate seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F

import dememo


def templates(num_classes: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Unit-variance smooth class templates, K×C×H×W."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(num_classes, channels, 4, 4, generator=g)
    t = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return t / t.flatten(1).std(dim=1).view(-1, 1, 1, 1)


def sample(t: torch.Tensor, n: int, contrast: float, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % len(t)
    y = y[torch.randperm(n, generator=g)]
    x = 0.5 + contrast * t[y] + noise * torch.randn(n, *t.shape[1:], generator=g)
    return x.clamp(0, 1), y


@attrs.define
class NoisyShapes(dememo.DatasetSource):
    """Generated 3×16×16 smooth class templates at low contrast under strong Gaussian pixel noise."""

    name: ClassVar[str] = "noisy-shapes"
    version: ClassVar[str] = "1"
    budgets: ClassVar[dict[str, float]] = {"linf": 8 / 255, "l2": 0.5, "l0": 1}
    num_classes: int = 10
    channels: int = 3
    size: int = 16
    contrast: float = 0.025
    noise: float = 0.1
    n_train: int = 1500
    n_val: int = 500
    n_test: int = 1000
    seed: int = 0

    def load(self, data_dir: Path, download: bool) -> dememo.Splits:
        t = templates(self.num_classes, self.channels, self.size, self.seed)
        out = {}
        for i, (split, n) in enumerate((("train", self.n_train), ("val", self.n_val), ("test", self.n_test))):
            x, y = sample(t, n, self.contrast, self.noise, seed=self.seed * 1000 + i + 1)
            out[split] = dememo.Data.from_tensors(x, y, self.num_classes, tag=f"noisy-shapes:{split}")
        return dememo.Splits(**out)


@dememo.hookimpl
def register_datasets(register):
    register(NoisyShapes)
