"""Helpers shared by attacks/test_adversarial_training.py, attacks/test_bit_depth.py, attacks/test_dfr.py, attacks/test_grayscale.py, attacks/test_jpeg.py, attacks/test_ueraser.py."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import dememo


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def transformed(plugin, x: torch.Tensor) -> torch.Tensor:
    """The training images a data-transform attack (bit-depth) trains on, for images ``x``."""
    return plugin.transform(dememo.Data.from_tensors(x, torch.zeros(len(x), dtype=torch.int64), 2)).x


def pil_images(v: np.ndarray) -> list[Image.Image]:
    """N×3×H×W uint8 → RGB PIL images, as ISS's loaders hold CIFAR images."""
    return [Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0)), "RGB") for img in v]
