"""Helpers shared by poisoners/test_ar.py, poisoners/test_cuda.py, poisoners/test_lsp.py, poisoners/test_ops.py, poisoners/test_random_noise.py."""

from __future__ import annotations

import torch
from hypothesis import settings

import dememo

PROPERTY = settings(max_examples=20, deadline=None)


def random_data(channels: int, size: int, num_classes: int, per_class: int, seed: int) -> dememo.Data:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(per_class * num_classes, channels, size, size, generator=g)
    y = torch.arange(len(x)) % num_classes
    return dememo.Data.from_tensors(x, y, num_classes, tag=f"ref-mfp:{channels}:{size}:{seed}")


def grey_data(channels: int, size: int, num_classes: int, per_class: int) -> dememo.Data:
    """Mid-grey images: a small δ is never clipped, so out − x is the plugin's δ itself."""
    y = torch.arange(per_class * num_classes) % num_classes
    x = torch.full((len(y), channels, size, size), 0.5)
    return dememo.Data.from_tensors(x, y, num_classes, tag=f"ref-mfp:grey:{channels}:{size}")
