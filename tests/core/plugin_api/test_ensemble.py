"""The vectorized ensemble (``dememo.ensemble``) and the harness facilities of the many-model metrics.

A member of ``fit_many`` must *be* standard training on its subset with its seed: same init, same batch
order, same optimiser arithmetic. Measured on digits / MLP with 3 epochs: parameters agree to ~1e-6 with
the loop of ``standard_training`` (float32 summation order), so the tolerance is 1e-4.
"""

from __future__ import annotations

import attrs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dememo.context import standard_training
from dememo.ensemble import Ensemble, fit_many
from support.unlearning import setting


@pytest.fixture(scope="module")
def digits():
    s = setting("digits", 0)
    ctx = s.context("ensemble-test")
    return s, attrs.evolve(ctx, recipe=attrs.evolve(ctx.recipe, epochs=3))


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _subsets(n: int, sizes: list[int], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rows = torch.zeros(len(sizes), n, dtype=torch.bool)
    for i, size in enumerate(sizes):
        rows[i, torch.randperm(n, generator=g)[:size]] = True
    return rows


@pytest.mark.parametrize("backend", ["vmap", "loop"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_members_are_standard_trainings(digits, backend, optimizer):
    s, ctx = digits
    ctx = attrs.evolve(ctx, recipe=attrs.evolve(ctx.recipe, optimizer=optimizer, label_smoothing=0.1,
                                                lr=0.05 if optimizer == "sgd" else 0.003))
    train = s.splits.train
    masks = _subsets(len(train), [700, 700, 700])
    seeds = [5, 6, 7]
    ens = fit_many(ctx, train, masks, seeds, backend=backend)
    for k in range(3):
        ref, _ = standard_training(attrs.evolve(ctx, seed=seeds[k]), train.subset(masks[k].nonzero().flatten(), "member"))
        assert _max_diff(ens.model(k), ref) < 1e-4
    # members differ from one another (different seeds and subsets)
    assert _max_diff(ens.model(0), ens.model(1)) > 1e-2


def test_uneven_subsets_follow_their_own_schedule(digits):
    """Members with fewer steps per epoch sit out the extra steps and pad their short last batch."""
    s, ctx = digits
    train = s.splits.train
    masks = _subsets(len(train), [300, 700, 129])
    ens = fit_many(ctx, train, masks, [1, 2, 3], backend="vmap")
    for k in range(3):
        ref, _ = standard_training(attrs.evolve(ctx, seed=[1, 2, 3][k]), train.subset(masks[k].nonzero().flatten(), "member"))
        assert _max_diff(ens.model(k), ref) < 1e-4


def test_logits_match_members_and_payload_round_trips(digits):
    s, ctx = digits
    train = s.splits.train
    ens = fit_many(ctx, train, _subsets(len(train), [500, 500]), [0, 1])
    logits = ens.logits(s.splits.test.x, batch_size=100)
    assert logits.shape == (2, len(s.splits.test), train.num_classes)
    for k in range(2):
        assert torch.allclose(logits[k], ens.model(k)(s.splits.test.x), atol=1e-5)
    back = Ensemble.from_payload(ens.to_payload(), ens.model(0), torch.device("cpu"))
    assert torch.equal(back.logits(s.splits.test.x), logits) and back.seeds == ens.seeds
    assert torch.equal(back.subsets, ens.subsets)


def test_batchnorm_and_bad_subsets_are_clear_errors(digits):
    s, ctx = digits
    with pytest.raises(ValueError, match="BatchNorm"):
        Ensemble.stack([nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.BatchNorm1d(4))], torch.ones(1, 3, dtype=torch.bool), [0])
    with pytest.raises(ValueError, match="K×"):
        fit_many(ctx, s.splits.train, torch.ones(2, 5, dtype=torch.bool), [0, 1])
    with pytest.raises(ValueError, match="at least one training sample"):
        fit_many(ctx, s.splits.train, torch.zeros(2, len(s.splits.train), dtype=torch.bool), [0, 1])
    with pytest.raises(ValueError, match="seeds"):
        fit_many(ctx, s.splits.train, torch.ones(2, len(s.splits.train), dtype=torch.bool), [0])


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 12), st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_feldman_zhang_estimator(k, n, seed):
    """mem = acc(in) − acc(out) ∈ [−1, 1]; a sample classified alike by every model scores 0."""
    from dememo_plugins.scorers.memorization import feldman_zhang

    g = torch.Generator().manual_seed(seed)
    subsets = torch.rand(k, n, generator=g) < 0.5
    correct = torch.rand(k, n, generator=g) < 0.7
    mem, undefined = feldman_zhang(correct, subsets)
    assert mem.shape == (n,) and bool((mem.abs() <= 1).all())
    assert undefined == int(((subsets.sum(0) == 0) | (subsets.sum(0) == k)).sum())
    assert torch.equal(feldman_zhang(torch.ones(k, n, dtype=torch.bool), subsets)[0], torch.zeros(n, dtype=torch.float64))
    # memorized = right only when trained on it
    assert bool((feldman_zhang(subsets, subsets)[0][(subsets.any(0)) & (~subsets).any(0)] == 1).all())
