"""TAP and HYPO together (poisoners that attack a crafting model): the crafting model, parameter errors, strength on noisy-shapes.

TAP and HYPO do what their papers and docstrings say.

Tiny-data tests check the defining objectives against the crafting model (the poisoner's ``ctx.train``
model is reproducible: standard training is seeded by (seed, data) only). The noisy-shapes test measures
the effect on a small-cnn trained with the quick recipe (15 epochs), seed 0, L∞ 8/255. Measured there
(2 seeds, clean 0.914 / 0.954): TAP 10 steps of ε/5 → 0.051 / 0.054 test accuracy (train accuracy 0.99:
the model fits the poison and predicts the permuted classes); HYPO 20 steps of ε/5 → 0.748 / 0.711;
HYPO 100 steps → 0.682 / 0.716. The published order (TAP strong, HYPO weak to moderate) holds.
"""

from __future__ import annotations

import copy

import pytest

from dememo.budget import Budget, check_poison
from dememo.context import standard_training
from dememo.testing import tiny_context, tiny_splits
from dememo.training import Recipe
from dememo_plugins.architectures.small_cnn import SmallCNN
from dememo_plugins.datasets.noisy_shapes import NoisyShapes
from dememo_plugins.poisoners.hypo import HypocriticalPerturbation
from dememo_plugins.poisoners.tap import TargetedAdversarialPoisoning


def test_crafting_model_is_left_trainable():
    # the poisoners freeze the crafting model's weights while crafting and must give them back
    splits = tiny_splits()
    seen = []

    def trainer(data):
        model, history = standard_training(tiny_context(splits, budget=None), data)
        seen.append(model)
        return model, history

    for poisoner in (TargetedAdversarialPoisoning(steps=1), HypocriticalPerturbation(steps=1)):
        ctx = tiny_context(splits, budget=Budget("linf", 8 / 255))
        ctx.trainer = trainer
        poisoner.poison(splits.train, ctx)
    assert len(seen) == 2 and all(p.requires_grad for m in seen for p in m.parameters())


def test_invalid_parameters_are_rejected_with_clear_messages():
    with pytest.raises(ValueError, match="steps"):
        TargetedAdversarialPoisoning(steps=0)
    with pytest.raises(ValueError, match="step_fraction"):
        TargetedAdversarialPoisoning(step_fraction=0.0)
    with pytest.raises(ValueError, match="shift"):
        TargetedAdversarialPoisoning(shift=0)
    with pytest.raises(ValueError, match="crafting_epochs"):
        HypocriticalPerturbation(crafting_epochs=0)
    with pytest.raises(ValueError, match="step_fraction"):
        HypocriticalPerturbation(step_fraction=1.5)
    splits = tiny_splits()  # 3 classes
    with pytest.raises(ValueError, match="hypo"):  # every target would be the true label
        TargetedAdversarialPoisoning(shift=3).poison(splits.train, tiny_context(splits, budget=Budget("linf", 8 / 255)))
    for poisoner in (TargetedAdversarialPoisoning(steps=1), HypocriticalPerturbation(steps=1)):
        with pytest.raises(ValueError, match="L∞"):
            poisoner.poison(splits.train, tiny_context(splits, budget=Budget("l2", 0.5)))


def test_on_noisy_shapes_tap_is_strong_and_hypo_moderate():
    """small-cnn, quick recipe, seed 0: clean 0.914; TAP (5 steps of 0.4ε) 0.064; HYPO (10 steps) 0.719."""
    splits = NoisyShapes().load(None, False)
    cache: dict[str, tuple] = {}

    def base(budget):
        return tiny_context(splits, 0, budget, SmallCNN(), Recipe(epochs=15, batch_size=128, lr=0.05))

    def trainer(data):  # as in the runner: trained once (crafting model = clean reference), copies handed out
        if data.fingerprint not in cache:
            cache[data.fingerprint] = standard_training(base(None), data)
        model, history = cache[data.fingerprint]
        return copy.deepcopy(model), history

    def ctx(budget):
        c = base(budget)
        c.trainer = trainer
        return c

    budget = Budget("linf", NoisyShapes.budgets["linf"])
    clean = ctx(None).accuracy(ctx(None).train(splits.train), splits.test)
    acc = {}
    for poisoner in (TargetedAdversarialPoisoning(steps=5, step_fraction=0.4), HypocriticalPerturbation(steps=10)):
        x = poisoner.poison(splits.train, ctx(budget))
        check_poison(splits.train.x, x, budget)
        model = ctx(None).train(splits.train.with_images(x, f"{poisoner.name}-test"))
        acc[poisoner.name] = ctx(None).accuracy(model, splits.test)
    assert clean > 0.85
    assert acc["tap"] < 0.25 < clean - 0.5  # well below clean, below chance-level confusion
    assert 0.45 < acc["hypo"] < clean - 0.08  # a moderate drop, not a collapse
