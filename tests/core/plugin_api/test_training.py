"""The standard training loop: a pure function of (init, data, recipe, generator state)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dememo import training
from dememo.data import Data
from dememo.testing import TinyMLP, tiny_splits
from dememo.training import (
    MAX_CPU_EVAL_BATCH, History, Recipe, accuracy, batch_indices, cycle_batches, eval_batch_size, fit, lr_factor,
    make_optimizer, predict,
)

RECIPE = Recipe(epochs=2, batch_size=16, lr=0.05)


@pytest.fixture(scope="module")
def splits():
    return tiny_splits(n_train=48, n_val=16, n_test=16)


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TinyMLP((1, 4, 4), 3, hidden=8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def weights(m: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_fit_is_deterministic_for_the_same_generator_seed(splits):
    a, b = model(), model()
    ha = fit(a, splits.train, recipe=RECIPE, generator=gen(1))
    hb = fit(b, splits.train, recipe=RECIPE, generator=gen(1))
    assert torch.equal(weights(a), weights(b))
    assert ha.to_json() == hb.to_json()


def test_fit_differs_for_another_generator_seed(splits):
    a, b = model(), model()
    fit(a, splits.train, recipe=RECIPE, generator=gen(1))
    fit(b, splits.train, recipe=RECIPE, generator=gen(2))
    assert not torch.equal(weights(a), weights(b))


def test_fit_learns_the_tiny_task(splits):
    m = model()
    before = accuracy(m, splits.test)
    fit(m, splits.train, recipe=Recipe(epochs=15, batch_size=16, lr=0.05), generator=gen(0))
    assert accuracy(m, splits.test) > max(before, 0.6)


def counting_fit(data, **kw):
    calls = []
    m = model()
    history = fit(m, data, recipe=kw.pop("recipe", RECIPE), generator=gen(0), after_step=lambda mod: calls.append(mod), **kw)
    return calls, history, m


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 7, 8])
def test_fit_with_steps_trains_exactly_that_many_optimiser_steps(splits, steps):
    data = splits.train.subset(torch.arange(40))  # 40 samples / batch 16 = 3 steps per epoch (last one short)
    calls, history, m = counting_fit(data, steps=steps)
    assert len(calls) == steps and all(c is m for c in calls)
    assert len(history.epochs) == math.ceil(steps / 3)


def test_fit_with_epochs_trains_every_batch_of_every_epoch(splits):
    calls, history, _ = counting_fit(splits.train.subset(torch.arange(40)), epochs=3)
    assert len(calls) == 9
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]
    assert all(math.isfinite(e["loss"]) and e["loss"] > 0 for e in history.epochs)
def test_fit_steps_overrides_a_zero_epoch_recipe(splits):
    calls, _, _ = counting_fit(splits.train, recipe=Recipe(epochs=0, batch_size=16), steps=4)
    assert len(calls) == 4


def test_fit_with_zero_epochs_or_empty_data_does_nothing(splits):
    m = model()
    w = weights(m)
    assert fit(m, splits.train, recipe=RECIPE, generator=gen(0), epochs=0).epochs == []
    assert fit(m, splits.train.subset(torch.arange(0)), recipe=RECIPE, generator=gen(0)).epochs == []
    assert torch.equal(weights(m), w)


def test_fit_records_eval_accuracy_per_epoch(splits):
    m = model()
    history = fit(m, splits.train, recipe=RECIPE, generator=gen(0), eval_data=splits.val)
    accs = history.column("eval_acc")
    assert len(accs) == 2 and all(0 <= a <= 1 for a in accs)
    assert accs[-1] == accuracy(m, splits.val)


def test_fit_with_paired_calls_the_loss_with_five_arguments(splits):
    task_forget = splits.train.subset(torch.arange(5), "forget")
    seen = []

    def loss(m, x, y, *rest):
        seen.append((len(x), len(rest), *(tuple(r.shape) for r in rest)))
        px, py = rest
        assert px.shape[1:] == x.shape[1:] and py.dtype == torch.int64
        return nn.functional.cross_entropy(m(x), y) - 0.1 * nn.functional.cross_entropy(m(px), py)

    fit(model(), splits.train, recipe=RECIPE, generator=gen(0), paired=task_forget, loss=loss)
    assert len(seen) == 2 * 3
    assert all(n_rest == 2 for _, n_rest, *_ in seen)
    # the paired data (5 samples) is cycled independently of the main batches (16)
    assert all(px_shape[0] <= 5 for _, _, px_shape, _ in seen)


def test_fit_with_custom_loss_without_paired_gets_three_arguments(splits):
    arities = []

    def loss(m, *args):
        arities.append(len(args) + 1)
        x, y = args
        return nn.functional.cross_entropy(m(x), y)

    fit(model(), splits.train, recipe=RECIPE, generator=gen(0), loss=loss, steps=2)
    assert arities == [3, 3]


def test_fit_updates_only_the_given_parameters(splits):
    m = model()
    first, last = m.net[1], m.net[3]
    w_first = first.weight.detach().clone()
    fit(m, splits.train, recipe=RECIPE, generator=gen(0), parameters=last.parameters(), weight_decay=0.0)
    assert torch.equal(first.weight, w_first)
    assert not torch.equal(last.weight, model().net[3].weight)


def test_fit_sets_the_scheduled_learning_rate_before_every_step(splits, monkeypatch):
    optimisers = []

    def spy(*args, **kwargs):
        optimisers.append(make_optimizer(*args, **kwargs))
        return optimisers[-1]

    monkeypatch.setattr(training, "make_optimizer", spy)
    lrs = []
    fit(model(), splits.train, recipe=RECIPE, generator=gen(0), schedule="cosine", lr=0.1,
        after_step=lambda m: lrs.append(optimisers[0].param_groups[0]["lr"]))
    assert len(lrs) == 6
    assert lrs == pytest.approx([0.1 * lr_factor("cosine", s, 6, RECIPE.warmup) for s in range(6)])


def test_predict_restores_the_training_mode():
    m = model()
    x = torch.rand(5, 1, 4, 4)
    m.train()
    out = predict(m, x)
    assert m.training and out.shape == (5, 3)
    m.eval()
    predict(m, x)
    assert not m.training


def test_predict_runs_in_eval_mode_and_batches_consistently():
    class ModeSpy(nn.Module):
        def __init__(self):
            super().__init__()
            self.modes = []

        def forward(self, x):
            self.modes.append(self.training)
            return x.flatten(1)[:, :2] * 2

    spy = ModeSpy().train()
    x = torch.rand(7, 1, 2, 2)
    out = predict(spy, x, batch_size=3)
    assert spy.modes == [False, False, False] and spy.training
    assert torch.equal(out, x.flatten(1)[:, :2] * 2)
    assert predict(spy, x[:0]).numel() == 0


@given(st.lists(st.integers(1, 64), min_size=1, max_size=3))
def test_cpu_eval_batch_is_a_power_of_two_in_bounds_and_shrinks_with_image_size(shape):
    batch = eval_batch_size(torch.empty(0, *shape))
    assert 16 <= batch <= MAX_CPU_EVAL_BATCH and batch & (batch - 1) == 0
    assert eval_batch_size(torch.empty(0, *shape, 4)) <= batch  # four times the values per image: never more


def test_cpu_eval_batch_for_the_shipped_input_shapes():
    # the sizes measured fastest in benchmarks/bench_eval_batch.py: digits MLP 1,024, small-cnn on noisy-shapes
    # 256, resnet18 on CIFAR 64
    assert [eval_batch_size(torch.empty(1, *s)) for s in ((1, 8, 8), (3, 16, 16), (3, 32, 32))] == [1024, 256, 64]


def test_predict_in_default_batches_equals_one_batch():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 256, 3))
    sizes = []
    m.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    x = torch.rand(700, 3, 16, 16)
    batched = predict(m, x)
    assert sizes == [256, 256, 188]  # eval_batch_size's batches on a CPU
    assert torch.allclose(batched, predict(m, x, batch_size=len(x)), atol=1e-6)


def test_predict_restores_the_mode_when_the_model_raises():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    b = Broken().train()
    with pytest.raises(RuntimeError):
        predict(b, torch.zeros(1, 1, 1, 1))
    assert b.training


def test_accuracy_on_empty_data_is_nan(splits):
    empty = splits.test.subset(torch.arange(0))
    assert math.isnan(accuracy(model(), empty))


def test_accuracy_counts_correct_predictions():
    class Fixed(nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(x.flatten(1)[:, 0].long(), 3).float()

    x = torch.tensor([0, 1, 2, 2], dtype=torch.float32).view(4, 1, 1, 1)
    data = Data.from_tensors(x, torch.tensor([0, 1, 1, 2]), 3)
    assert accuracy(Fixed(), data) == 0.75


# -- schedules -------------------------------------------------------------------------------------


def test_onecycle_starts_at_a_tenth_peaks_after_warmup_and_ends_at_zero():
    assert lr_factor("onecycle", 0, 100, 0.25) == pytest.approx(0.1)
    assert lr_factor("onecycle", 25, 100, 0.25) == pytest.approx(1.0)
    assert lr_factor("onecycle", 100, 100, 0.25) == pytest.approx(0.0)
    assert lr_factor("onecycle", 0, 100, 0.0) == pytest.approx(1.0)  # no warmup: start at the peak


def test_cosine_anneals_from_one_to_zero():
    assert lr_factor("cosine", 0, 10, 0.25) == pytest.approx(1.0)
    assert lr_factor("cosine", 5, 10, 0.25) == pytest.approx(0.5)
    assert lr_factor("cosine", 10, 10, 0.25) == pytest.approx(0.0, abs=1e-12)


@given(st.integers(0, 50), st.integers(2, 50), st.floats(0, 1))
def test_constant_schedule_is_one(step, total, warmup):
    assert lr_factor("constant", step, total, warmup) == 1.0


@given(st.integers(2, 200), st.floats(0, 0.9))
def test_schedules_stay_in_unit_interval_and_have_the_documented_shape(total, warmup):
    for schedule in ("onecycle", "cosine"):
        f = [lr_factor(schedule, s, total, warmup) for s in range(total + 1)]
        assert all(-1e-12 <= v <= 1 + 1e-12 for v in f)
        peak = max(range(total + 1), key=lambda s: f[s])
        assert all(a <= b + 1e-12 for a, b in zip(f[:peak], f[1 : peak + 1]))  # rises to the peak
        assert all(a + 1e-12 >= b for a, b in zip(f[peak:], f[peak + 1 :]))  # then falls
        assert f[-1] == pytest.approx(0.0, abs=1e-12)


def test_single_step_schedules_use_the_full_rate_and_unknown_names_fail():
    assert lr_factor("onecycle", 0, 1, 0.25) == 1.0
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor("linear", 1, 10, 0.25)


def test_recipe_rejects_negative_epochs_lr_and_zero_batch():
    for bad in ({"epochs": -1}, {"batch_size": 0}, {"lr": -0.1}):
        with pytest.raises(ValueError):
            Recipe(**bad)


# -- batches ---------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 40), st.integers(1, 16), st.integers(0, 2**31), st.booleans())
def test_batch_indices_cover_every_sample_once(n, batch_size, seed, shuffle):
    batches = list(batch_indices(n, batch_size, gen(seed), shuffle=shuffle))
    assert all(0 < len(b) <= batch_size for b in batches)
    flat = torch.cat(batches).tolist() if batches else []
    assert sorted(flat) == list(range(n))
    if not shuffle:
        assert flat == list(range(n))
    again = list(batch_indices(n, batch_size, gen(seed), shuffle=shuffle))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_cycle_batches_never_ends_and_rejects_empty_data(splits):
    small = splits.train.subset(torch.arange(5))
    it = cycle_batches(small, 2, gen(0))
    seen = [next(it)[0].shape[0] for _ in range(7)]
    assert seen == [2, 2, 1, 2, 2, 1, 2]
    with pytest.raises(ValueError, match="empty"):
        next(cycle_batches(small.subset(torch.arange(0)), 2, gen(0)))


def test_history_column_and_json():
    h = History([{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0, "eval_acc": 0.5}])
    assert h.column("loss") == [2.0, 1.0] and h.column("eval_acc") == [0.5]
    assert h.to_json() == h.epochs and h.to_json() is not h.epochs


def test_epoch_hook_fires_once_per_epoch_after_its_last_step(splits):
    seen, steps = [], []
    data = splits.train.subset(torch.arange(10))
    fit(model(), data, recipe=Recipe(epochs=3, batch_size=4, lr=0.05), generator=gen(0),
        after_step=lambda m: steps.append(len(steps) + 1), after_epoch=lambda m, e: seen.append((e, len(steps))))
    assert [e for e, _ in seen] == [1, 2, 3]
    assert [s for _, s in seen] == [3, 6, 9], "3 epochs of ceil(10/4) = 3 steps"
