"""The ``random-noise`` poisoner (plugins/dememo_plugins/poisoners/random_noise.py): behaviour tests and reference checks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.budget import Budget, check_poison
from dememo.testing import tiny_context, tiny_splits
from dememo_plugins.poisoners.random_noise import RandomNoise

from support.poisoners.model_free_reference import grey_data


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), eps=st.floats(1 / 255, 0.3), mode=st.sampled_from(["sample", "class"]))
def test_random_noise_respects_budget(seed, eps, mode):
    splits = tiny_splits(n_train=30)
    budget = Budget("linf", eps)
    out = RandomNoise(mode=mode).poison(splits.train, tiny_context(splits, seed=seed, budget=budget))
    check_poison(splits.train.x, out, budget)


@pytest.mark.reference("poisoner", "random-noise", source="HanxunH/Unlearnable-Examples:toolbox.py")
def test_random_noise_is_uniform_in_the_linf_ball_sample_or_class_wise():
    """HanxunH/Unlearnable-Examples, toolbox.py (PerturbationTool.random_noise): δ ~ U(−ε, ε) of shape
    [N, C, H, W] (sample-wise) or [K, C, H, W] indexed by the label (class-wise, dataset.py), added and
    clipped. Checked on grey images: δ within [−ε, ε] with the moments of U(−ε, ε) (mean 0, variance
    ε²/3, a quarter of the values below −ε/2), one pattern per class or one per image. The released
    dataset.py clamps δ·255 to [0, 255] before adding it, dropping its negative half (a known bug): here
    the negative half is kept."""
    from dememo_plugins.poisoners.random_noise import RandomNoise

    eps = 8 / 255
    data = grey_data(3, 8, 5, 40)
    for mode in ("sample", "class"):
        delta = RandomNoise(mode=mode).poison(data, tiny_context(seed=3, budget=Budget("linf", eps))) - data.x
        assert float(delta.abs().max()) <= eps + 1e-6
        assert abs(float(delta.mean())) < 0.02 * eps
        assert abs(float(delta.var()) / (eps**2 / 3) - 1) < 0.05
        assert abs(float((delta < -eps / 2).float().mean()) - 0.25) < 0.02
        first, second = delta[data.y == 0][0], delta[data.y == 0][1]
        assert torch.equal(first, second) == (mode == "class")
        assert not torch.equal(delta[data.y == 0][0], delta[data.y == 1][0])
