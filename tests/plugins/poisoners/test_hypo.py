"""The ``hypo`` poisoner (plugins/dememo_plugins/poisoners/hypo.py): behaviour tests and reference checks.

- TAP (lhfowl/adversarial_poisons, ``village/shop/forgemaster_targeted.py`` with ``forgemaster_base.py``'s
  PGD step) and HYPO (TLMichael/Delusive-Adversary, ``poison.py``, attack P2): sign descent on a fixed
  clean-trained model towards (y + 1) mod C, respectively the true label.

TAP and HYPO do what their papers and docstrings say.

Tiny-data tests check the defining objectives against the crafting model (the poisoner's ``ctx.train``
model is reproducible: standard training is seeded by (seed, data) only). The noisy-shapes test measures
the effect on a small-cnn trained with the quick recipe (15 epochs), seed 0, L∞ 8/255. Measured there
(2 seeds, clean 0.914 / 0.954): TAP 10 steps of ε/5 → 0.051 / 0.054 test accuracy (train accuracy 0.99:
the model fits the poison and predicts the permuted classes); HYPO 20 steps of ε/5 → 0.748 / 0.711;
HYPO 100 steps → 0.682 / 0.716. The published order (TAP strong, HYPO weak to moderate) holds.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dememo.budget import Budget
from dememo.testing import tiny_context, tiny_splits
from dememo_plugins.poisoners.hypo import HypocriticalPerturbation

from support.poisoners.crafting import crafting_model
from support.poisoners.em import context, digits, released_sign_descent


@pytest.mark.reference("poisoner", "hypo", source="TLMichael/Delusive-Adversary:poison.py")
def test_hypo_is_the_released_p2_descent_from_the_clean_image():
    """TLMichael/Delusive-Adversary ``poison.py`` (``batch_poison`` with ``adv_or_hyp='hyp'``: the true
    label, ``LinfStep`` of size ε/5 from the clean image, projected, clamped): replayed on the same
    clean-trained model, image for image; the crafting model's loss on the poisons falls."""
    data, budget = digits(), Budget("linf", 0.25)
    out = HypocriticalPerturbation(steps=5).poison(data, context(data, 0, budget))
    model = context(data, 0, budget).train(data).eval()
    expected = released_sign_descent(model, data.x, torch.zeros_like(data.x), data.y, budget.eps,
                                     0.2 * budget.eps, 5)
    same = float((out - expected).abs().le(1e-6).float().mean())
    assert same > 0.995, f"{same:.4f} of the pixels match the released update"
    with torch.no_grad():
        assert F.cross_entropy(model(out), data.y) < 0.5 * F.cross_entropy(model(data.x), data.y)


def test_hypo_makes_the_training_data_easier_for_the_crafting_model():
    splits = tiny_splits()
    budget = Budget("linf", 16 / 255)
    x = HypocriticalPerturbation(steps=20).poison(splits.train, tiny_context(splits, budget=budget))
    model = crafting_model(splits)
    with torch.no_grad():
        clean = F.cross_entropy(model(splits.train.x), splits.train.y)
        poisoned = F.cross_entropy(model(x), splits.train.y)
    assert poisoned < 0.5 * clean  # measured 0.04 against 0.19
    assert (model(x).argmax(1) == splits.train.y).all()


def test_hypo_with_crafting_epochs_trains_its_own_short_model():
    splits = tiny_splits()
    budget = Budget("linf", 16 / 255)

    def run(**params):
        return HypocriticalPerturbation(steps=5, **params).poison(splits.train, tiny_context(splits, budget=budget))

    full, short, again = run(), run(crafting_epochs=1), run(crafting_epochs=1)
    assert torch.equal(short, again) and not torch.equal(short, full)


def test_hypo_random_start_is_seeded():
    splits = tiny_splits()
    budget = Budget("linf", 16 / 255)
    def run(seed, **params):
        return HypocriticalPerturbation(steps=1, **params).poison(splits.train, tiny_context(splits, seed=seed, budget=budget))

    a, b, zero = run(0, random_start=True), run(1, random_start=True), run(0)
    assert not torch.equal(a, b) and not torch.equal(a, zero)
