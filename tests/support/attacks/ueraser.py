"""Helpers shared by attacks/test_orthogonal_projection.py, attacks/test_ueraser.py."""

from __future__ import annotations

import torch


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
