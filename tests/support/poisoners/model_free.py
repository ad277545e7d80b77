"""Helpers shared by poisoners/test_ar.py, poisoners/test_cuda.py, poisoners/test_lsp.py, poisoners/test_model_free_family.py, poisoners/test_ops.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st

import dememo
from dememo.budget import Budget, check_poison
from dememo.context import standard_training
from dememo.testing import tiny_context
from dememo.training import Recipe
from dememo_plugins.architectures.small_cnn import SmallCNN
from dememo_plugins.datasets.noisy_shapes import NoisyShapes

PROPERTY = settings(max_examples=25, deadline=None)


shapes = st.tuples(st.sampled_from([1, 3]), st.sampled_from([4, 8, 16]))


classes = st.integers(2, 12)


seeds = st.integers(0, 2**16)


def make_data(channels: int, size: int, num_classes: int, seed: int, value: float | None = None) -> dememo.Data:
    """Three images per class: uniform random pixels, or all pixels equal to ``value``."""
    n = 3 * num_classes
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size, size, generator=g) if value is None else torch.full((n, channels, size, size), value)
    y = torch.arange(n) % num_classes
    return dememo.Data.from_tensors(x, y, num_classes, tag=f"prop:{seed}:{value}")


def run(poisoner, data: dememo.Data, budget: Budget, seed: int) -> torch.Tensor:
    before = data.x.clone()
    out = poisoner.poison(data, tiny_context(seed=seed, budget=budget))
    assert torch.equal(data.x, before), "a poisoner must not modify data.x"
    check_poison(data.x, out, budget)  # shape, finite, [0, 1], budget
    return out


SPLITS = None


def noisy_shapes_accuracy(poisoner, seed: int = 0) -> float:
    """Clean test accuracy of small-cnn trained 15 epochs on the (poisoned) noisy-shapes training split."""
    global SPLITS
    SPLITS = SPLITS or NoisyShapes().load(None, False)

    def ctx(budget):
        return tiny_context(SPLITS, seed, budget, SmallCNN(), Recipe(epochs=15, batch_size=128, lr=0.05))

    data = SPLITS.train
    if poisoner is not None:
        budget = Budget(poisoner.norm, NoisyShapes.budgets.get(poisoner.norm, float("inf")))
        x = poisoner.poison(data, ctx(budget))
        check_poison(data.x, x, budget)
        data = data.with_images(x, f"{poisoner.name}:{seed}")
    model, _ = standard_training(ctx(None), data)
    return ctx(None).accuracy(model, SPLITS.test)


@pytest.fixture(scope="module")
def clean_accuracy():
    return noisy_shapes_accuracy(None)
