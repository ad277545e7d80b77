"""Helpers shared by architectures/test_airbench.py, architectures/test_paper_scale_family.py, architectures/test_resnet.py."""

from __future__ import annotations

import torch
from torch import nn

import dememo


def build(arch: dememo.Architecture, shape, classes, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return arch.build(shape, classes)
