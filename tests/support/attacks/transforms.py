"""Helpers shared by attacks/test_adversarial_training.py, attacks/test_bit_depth.py, attacks/test_grayscale.py, attacks/test_jpeg.py, attacks/test_transform_family.py."""

from __future__ import annotations

import torch
from hypothesis import settings
from hypothesis import strategies as st

import dememo

PROPERTY = settings(max_examples=25, deadline=None)


seeds = st.integers(0, 2**16)


def images(n: int, c: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def data_of(x: torch.Tensor, num_classes: int = 3) -> dememo.Data:
    return dememo.Data.from_tensors(x, torch.arange(len(x)) % num_classes, num_classes, tag="train-attacks")
