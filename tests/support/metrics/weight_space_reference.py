"""Helpers shared by attacks/test_weight_noise.py, attacks/test_weight_recovery.py, metrics/test_certified_learnability.py, metrics/test_depth.py."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import settings

from dememo.testing import tiny_context, tiny_splits

PROPERTY = settings(max_examples=30, deadline=None)


@pytest.fixture(scope="module")
def tiny():
    splits = tiny_splits()
    return splits, tiny_context(splits, budget=None).train(splits.train)


def moved_copy(model: torch.nn.Module, scale: float, seed: int) -> torch.nn.Module:
    """``model`` with every parameter moved by ``scale``·N(0, 1) (a seeded random point around it)."""
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return out
