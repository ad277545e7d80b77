"""First-party datasets, architectures and methods do what their docstrings and papers say."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.budget import Budget, check_poison
from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo_plugins.architectures.mlp import MLP
from dememo_plugins.architectures.small_cnn import SmallCNN
from dememo_plugins.attacks.weight_noise import WeightNoise
from dememo_plugins.datasets.digits import Digits
from dememo_plugins.datasets.noisy_shapes import NoisyShapes
from dememo_plugins.poisoners.em import ErrorMinimizing
from dememo_plugins.poisoners.random_noise import RandomNoise
from dememo_plugins.unlearners.gradient_ascent import GradientAscent
from dememo_plugins.unlearners.retrain import Retrain


def test_digits_is_the_real_scikit_learn_data_with_a_fixed_split():
    a, b = Digits().load(None, False), Digits().load(None, False)
    assert (len(a.train), len(a.val), len(a.test)) == (1078, 180, 539)
    assert a.train.shape == (1, 8, 8) and a.num_classes == 10
    assert a.train.fingerprint == b.train.fingerprint
    assert float(a.train.x.min()) == 0.0 and float(a.train.x.max()) == 1.0
    assert torch.allclose(a.train.x * 16, (a.train.x * 16).round())  # 17 grey levels, step 1/16
    test_idx = set(a.test.index.tolist())
    assert len(test_idx) == len(a.test)


def test_noisy_shapes_is_deterministic_balanced_and_weak_per_pixel():
    s = NoisyShapes().load(None, False)
    assert s.train.shape == (3, 16, 16) and s.num_classes == 10
    assert torch.bincount(s.train.y).tolist() == [150] * 10
    assert s.train.fingerprint == NoisyShapes().load(None, False).train.fingerprint
    assert s.train.fingerprint != NoisyShapes(seed=1).load(None, False).train.fingerprint
    # per-pixel class signal (contrast) is far below the per-pixel noise: no single pixel tells the class
    class_means = torch.stack([s.train.x[s.train.y == k].mean(0) for k in range(10)])
    within = s.train.x[s.train.y == 0].std(0).mean()
    assert class_means.std(0).mean() < 0.5 * within


@pytest.mark.parametrize("shape, classes", [((1, 8, 8), 10), ((3, 16, 16), 7), ((3, 32, 32), 100), ((1, 28, 28), 2)])
@pytest.mark.parametrize("arch", [MLP(), SmallCNN()])
def test_architectures_build_for_any_image_size_and_class_count(arch, shape, classes):
    model = arch.build(shape, classes)
    assert model(torch.rand(4, *shape)).shape == (4, classes)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), eps=st.floats(1 / 255, 0.3), mode=st.sampled_from(["sample", "class"]))
def test_random_noise_respects_budget(seed, eps, mode):
    splits = tiny_splits(n_train=30)
    budget = Budget("linf", eps)
    out = RandomNoise(mode=mode).poison(splits.train, tiny_context(splits, seed=seed, budget=budget))
    check_poison(splits.train.x, out, budget)


def _delta_rows(data, out):
    delta = out - data.x
    interior = ((data.x > 0.05) & (data.x < 0.95)).all(0)  # pixels never clipped in any sample
    return delta[:, interior]


# One round of one small PGD step: δ still carries its per-sample random start, so a class-indexed δ
# (the bug) would show up as identical rows within a class. (After many sign-gradient steps EM may
# legitimately drive same-class samples to the same corner of the ε-ball.)
@pytest.mark.parametrize("poisoner", [RandomNoise(mode="sample"), ErrorMinimizing(mode="sample", max_rounds=1, pgd_steps=1)])
def test_sample_wise_noise_is_indexed_by_sample_not_by_class(poisoner):
    # regression test for the known public-code bug where "sample-wise" noise was looked up by label
    splits = tiny_splits(n_train=60, shape=(1, 8, 8))
    out = poisoner.poison(splits.train, tiny_context(splits, budget=Budget("linf", 8 / 255)))
    rows = _delta_rows(splits.train, out)
    same_class = (splits.train.y == 0).nonzero().flatten()[:2]
    assert not torch.allclose(rows[same_class[0]], rows[same_class[1]])


@pytest.mark.parametrize("poisoner", [RandomNoise(mode="class"), ErrorMinimizing(mode="class", max_rounds=2)])
def test_class_wise_noise_is_one_pattern_per_class(poisoner):
    splits = tiny_splits(n_train=60, shape=(1, 8, 8))
    splits = type(splits)(splits.train.with_images(splits.train.x * 0.5 + 0.25, "mid"), splits.val, splits.test)
    out = poisoner.poison(splits.train, tiny_context(splits, budget=Budget("linf", 8 / 255)))
    delta = out - splits.train.x
    for k in range(splits.num_classes):
        rows = delta[splits.train.y == k]
        assert torch.allclose(rows, rows[0].expand_as(rows), atol=1e-6)
    assert not torch.allclose(delta[splits.train.y == 0][0], delta[splits.train.y == 1][0])


def test_em_minimises_the_surrogate_loss_compared_with_random_noise():
    # the defining property of error-minimising noise: data become *easier* to fit (min-min)
    splits = tiny_splits(n_train=90, shape=(1, 8, 8))
    ctx = tiny_context(splits, budget=Budget("linf", 16 / 255))
    em = ErrorMinimizing(max_rounds=6).poison(splits.train, ctx)
    rnd = RandomNoise().poison(splits.train, tiny_context(splits, budget=Budget("linf", 16 / 255)))
    losses = {}
    for name, x in {"em": em, "random": rnd}.items():
        data = splits.train.with_images(x, name)
        c = tiny_context(splits, seed=3, budget=None)
        model = c.new_model()
        c.fit(model, data, epochs=2)
        losses[name] = torch.nn.functional.cross_entropy(c.predict(model, data), data.y).item()
    assert losses["em"] < losses["random"]


def test_weight_noise_scales_with_sigma_and_zero_is_identity():
    splits = tiny_splits()
    ctx = tiny_context(splits, budget=None)
    model = ctx.train(splits.train)
    base = torch.cat([p.detach().flatten() for p in model.parameters()])
    (same,) = WeightNoise(sigma=0.0, draws=1).attack(model, None, ctx)
    assert torch.equal(torch.cat([p.detach().flatten() for p in same.parameters()]), base)
    for sigma in (0.01, 0.1):
        draws = WeightNoise(sigma=sigma, draws=2).attack(model, None, ctx)
        moved = torch.cat([p.detach().flatten() for p in draws[0].parameters()]) - base
        assert abs(float(moved.std()) - sigma) < 0.2 * sigma
        assert not torch.equal(draws[0].state_dict()["net.1.weight"], draws[1].state_dict()["net.1.weight"])


def test_retrain_never_needs_the_forget_set_and_equals_standard_training():
    splits = tiny_splits()
    task = tiny_task(splits)
    ctx = tiny_context(splits, budget=None)
    model = Retrain().unlearn(None, task, ctx)
    again = tiny_context(splits, budget=None).train(task.retain)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_gradient_ascent_with_too_large_a_learning_rate_destroys_the_model():
    splits = tiny_splits()
    task = tiny_task(splits)
    ctx = tiny_context(splits, budget=None)
    model = ctx.train(splits.train)
    before = ctx.accuracy(model, splits.test)
    gentle = GradientAscent(lr=0.01, epochs=1).unlearn(ctx.train(splits.train), task, ctx)
    harsh = GradientAscent(lr=5.0, epochs=5).unlearn(ctx.train(splits.train), task, ctx)
    assert ctx.accuracy(gentle, splits.test) >= before - 0.1
    assert ctx.accuracy(harsh, splits.test) < before - 0.3
