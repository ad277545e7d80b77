"""Helpers shared by poisoners/test_hypo.py, poisoners/test_tap.py."""

from __future__ import annotations

from dememo.context import standard_training
from dememo.testing import tiny_context


def crafting_model(splits, seed=0):
    """The model the poisoners get from ``ctx.train(splits.train)`` in ``tiny_context(splits, seed)``."""
    return standard_training(tiny_context(splits, seed=seed, budget=None), splits.train)[0]
