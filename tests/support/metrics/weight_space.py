"""Helpers shared by attacks/test_weight_recovery.py, metrics/test_certified_learnability.py."""

from __future__ import annotations

import pytest
from hypothesis import settings

from dememo.testing import tiny_context, tiny_splits

PROPERTY = settings(max_examples=25, deadline=None)


@pytest.fixture(scope="module")
def tiny():
    splits = tiny_splits()
    model = tiny_context(splits, budget=None).train(splits.train)
    return splits, model
