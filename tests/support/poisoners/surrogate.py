"""Helpers shared by poisoners/test_rem.py, poisoners/test_sep.py, poisoners/test_surrogate_training_family.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import settings

import dememo
from dememo.budget import Budget, check_poison
from dememo.context import standard_training
from dememo.data import Splits
from dememo.testing import tiny_context
from dememo.training import Recipe
from dememo_plugins.architectures.small_cnn import SmallCNN
from dememo_plugins.datasets.noisy_shapes import NoisyShapes

PROPERTY = settings(max_examples=10, deadline=None)


FAST_REM = dict(max_rounds=2, train_steps=2, pgd_steps=2, adv_steps=1, samples=2)


def run(poisoner, data: dememo.Data, budget: Budget, seed: int) -> torch.Tensor:
    before = data.x.clone()
    out = poisoner.poison(data, tiny_context(Splits(data, data, data), seed=seed, budget=budget))
    assert torch.equal(data.x, before), "a poisoner must not modify data.x"
    check_poison(data.x, out, budget)  # shape, finite, [0, 1], budget
    return out


SPLITS: dememo.Splits | None = None


def noisy_shapes_accuracy(poisoner, seed: int = 0) -> float:
    """Clean test accuracy of small-cnn trained with the quick recipe on 750 (poisoned) noisy-shapes images."""
    global SPLITS
    SPLITS = SPLITS or NoisyShapes(n_train=750).load(None, False)

    def ctx(budget):
        return tiny_context(SPLITS, seed, budget, SmallCNN(), Recipe(epochs=15, batch_size=128, lr=0.05))

    data = SPLITS.train
    if poisoner is not None:
        budget = Budget("linf", NoisyShapes.budgets["linf"])
        x = poisoner.poison(data, ctx(budget))
        check_poison(data.x, x, budget)
        data = data.with_images(x, f"{poisoner.name}:{seed}")
    model, _ = standard_training(ctx(None), data)
    return ctx(None).accuracy(model, SPLITS.test)


@pytest.fixture(scope="module")
def clean_accuracy():
    return noisy_shapes_accuracy(None)
