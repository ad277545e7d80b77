"""One-run memorization proxies rank memorized training samples high (higher = more memorized).

Ground truth is label noise: 5 % of the digits training split (54 of 1,078 images, seeded) get a wrong
label. Under a recipe that fits them — the quick suite's digits recipe without weight decay and with 60
epochs (91 % / 89 % of the flipped labels fitted at the end, seeds 0 / 1) — they are memorized by construction (a
model that never saw a flipped sample cannot predict its wrong label; one trained on it does), and every
proxy must rank them above the clean samples. Measured AUC of "is mislabeled" (seed 0 / 1 of this file's
flips; loss-curvature as tested, ``draws=2, every=3``, and with its defaults in brackets):

=================== ===================== ===================== ============================= ==============
proxy               digits, memorizing    digits, quick recipe  noisy-shapes, quick recipe    noisy-shapes,
                                                                                              memorizing
=================== ===================== ===================== ============================= ==============
confidence          0.9995 / 0.9997       0.9996 / 0.9999       0.996 / 0.986                 0.999
max-confidence      0.978 / 0.974         0.854 / 0.741         0.608 / 0.544                 0.977
entropy             0.957 / 0.945         0.846 / 0.746         0.605 / 0.548                 0.966
correctness         0.9997 / 0.9998       0.9997 / 0.9997       0.991 / 0.970                 0.999
holdout-retraining  0.983 / 0.978         0.924 / 0.861         0.527 / 0.496                 0.836
loss-curvature      0.993 / 0.997         0.991 / 0.991         0.950 / 0.905                 0.995
                    [0.998 / 0.999]       [0.997 / 0.997]       [0.961 / 0.914]
=================== ===================== ===================== ============================= ==============

The quick recipes fit few flipped labels (digits 26 % / 9 %, noisy-shapes 1 % / 3 %): the label-free proxies
(max-confidence, entropy) and holdout-retraining, which need the model to have *memorized* the wrong label,
fall back there, and the label-aware ones still see the samples as never learned. The asserted floors are
the seed-0 digits values minus a margin (noisy-shapes is too slow for this file: 5–40 s per proxy call).
The whole file takes about 15 s on 2 cores (30 s when they are shared).
"""

from __future__ import annotations

import functools
import math

import attrs
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from unlearning_kit import _loaded

from dememo.context import Context, seeded_generator, standard_training
from dememo.hashing import derive_seed, digest
from dememo.testing import tiny_context, tiny_splits
from dememo.training import Recipe, predict
from dememo_plugins.scorers import _learning_curve, loss_curvature
from dememo_plugins.scorers._learning_curve import learning_curve
from dememo_plugins.scorers.confidence import ConfidenceProxy
from dememo_plugins.scorers.correctness import CorrectnessProxy
from dememo_plugins.scorers.entropy import EntropyProxy
from dememo_plugins.scorers.holdout_retraining import HoldoutRetraining, symmetric_kl
from dememo_plugins.scorers.loss_curvature import LossCurvature, curvature
from dememo_plugins.scorers.max_confidence import MaxConfidenceProxy

CPU = torch.device("cpu")
MEMORIZING = Recipe(epochs=60, batch_size=128, lr=0.05, weight_decay=0.0)  # the digits recipe, no weight decay, 2× epochs


@functools.cache
def noisy_digits(seed: int = 0, fraction: float = 0.05):
    """The digits training split with a seeded ``fraction`` of labels replaced by a different class."""
    config, splits = _loaded("digits")
    train = splits.train
    g = torch.Generator().manual_seed(derive_seed("flip", seed))
    k = round(fraction * len(train))
    idx = torch.randperm(len(train), generator=g)[:k]
    y = train.y.clone()
    y[idx] = (y[idx] + torch.randint(1, train.num_classes, (k,), generator=g)) % train.num_classes
    flipped = torch.zeros(len(train), dtype=torch.bool)
    flipped[idx] = True
    data = attrs.evolve(train, y=y, fingerprint=digest([train.fingerprint, "flip", seed, fraction]))
    ctx = Context(device=CPU, seed=seed, generator=seeded_generator(derive_seed(seed, "scores"), CPU),
                  recipe=config.entry.recipe, architecture=config.architecture.obj,
                  input_shape=splits.shape, num_classes=splits.num_classes)
    return data, flipped, ctx


def auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """ROC AUC: P(score of a positive > score of a negative), ties counting one half."""
    pos, neg = scores[positive][:, None], scores[~positive][None, :]
    return float((pos > neg).double().mean() + 0.5 * (pos == neg).double().mean())


def check_scores(scores: torch.Tensor, n: int) -> None:
    assert scores.shape == (n,) and scores.dtype.is_floating_point and bool(torch.isfinite(scores).all())


# --- mislabeled samples are ranked as memorized ---------------------------------------------------------

MEMORIZING_FLOORS = [
    (ConfidenceProxy, {}, 0.97),
    (MaxConfidenceProxy, {}, 0.92),
    (EntropyProxy, {}, 0.90),
    (CorrectnessProxy, {}, 0.97),
    (HoldoutRetraining, {}, 0.93),
    (LossCurvature, {"draws": 2, "every": 3}, 0.95),
]


@pytest.mark.parametrize("cls, params, floor", MEMORIZING_FLOORS, ids=lambda v: getattr(v, "name", ""))
def test_proxy_ranks_memorized_mislabeled_samples_high(cls, params, floor):
    data, flipped, ctx = noisy_digits()
    scores = cls(**params).score(data, attrs.evolve(ctx, recipe=MEMORIZING))
    check_scores(scores, len(data))
    assert auc(scores, flipped) >= floor


QUICK_FLOORS = [
    (ConfidenceProxy, {}, 0.97),
    (MaxConfidenceProxy, {}, 0.70),
    (EntropyProxy, {}, 0.70),
    (CorrectnessProxy, {}, 0.97),
    (HoldoutRetraining, {}, 0.85),
    (LossCurvature, {"draws": 2, "every": 3}, 0.95),
]


@pytest.mark.parametrize("cls, params, floor", QUICK_FLOORS, ids=lambda v: getattr(v, "name", ""))
def test_proxy_ranks_mislabeled_samples_high_under_the_quick_recipe(cls, params, floor):
    data, flipped, ctx = noisy_digits()
    assert auc(cls(**params).score(data, ctx), flipped) >= floor


def test_label_aware_proxies_beat_label_free_ones_when_noise_is_not_fitted():
    """The quick recipe fits few flipped labels: the model predicts their true class, so the label-free
    max-confidence sees them as ordinary while 1 − true-class confidence sees them as never learned."""
    data, flipped, ctx = noisy_digits()
    curve = learning_curve(data, ctx)
    assert float(curve.correct[-1][flipped].mean()) < 0.4  # 26 % measured
    assert auc(ConfidenceProxy().score(data, ctx), flipped) > auc(MaxConfidenceProxy().score(data, ctx), flipped) + 0.1


# --- the learning curve is standard training, recorded ------------------------------------------------


def test_learning_curve_records_the_standard_training_run():
    """Same init and batch order as ``standard_training``: the last record is the standard model's."""
    data, _, ctx = noisy_digits()
    model, _ = standard_training(ctx, data)
    curve = learning_curve(data, ctx)
    assert curve.epochs == tuple(range(1, ctx.recipe.epochs + 1))
    assert torch.equal(curve.correct[-1], (predict(model, data.x).argmax(1) == data.y).float())
    probs = predict(model, data.x).softmax(1)
    assert torch.equal(curve.true_confidence[-1], probs.gather(1, data.y.view(-1, 1)).squeeze(1))
    assert bool((curve.entropy >= 0).all()) and bool((curve.entropy <= math.log(data.num_classes) + 1e-5).all())


def test_confidence_is_the_first_versions_running_mean():
    """The refactored C-proxy is bit-identical to its first version (which accumulated its own sum)."""
    data, _, ctx = noisy_digits()
    local = ctx.for_training_on(data)
    model = local.new_model()
    total, epochs = torch.zeros(len(data)), []

    def record(m, epoch):
        total.add_(ctx.predict(m, data.x).softmax(1).gather(1, data.y.view(-1, 1)).squeeze(1))
        epochs.append(epoch)

    local.fit(model, data, after_epoch=record)
    assert torch.equal(ConfidenceProxy().score(data, ctx), 1.0 - total / len(epochs))


def test_one_training_serves_every_learning_curve_proxy():
    data, _, ctx = noisy_digits()
    first = learning_curve(data, ctx)
    assert learning_curve(data, ctx) is first
    assert learning_curve(data, attrs.evolve(ctx, seed=1)) is not first


def test_loss_curvature_does_not_change_the_training_run(monkeypatch):
    """Its Rademacher draws come from their own generator: the last checkpoint is the standard model."""
    data, _, ctx = noisy_digits()
    ctx = attrs.evolve(ctx, recipe=attrs.evolve(ctx.recipe, epochs=5))
    seen = []

    def spy(model, x, *args):
        seen.append(predict(model, x))
        return curvature(model, x, *args)

    monkeypatch.setattr(loss_curvature, "curvature", spy)
    LossCurvature(draws=1, every=2).score(data, ctx)
    assert len(seen) == 3  # epochs 2, 4 and the last, 5
    model, _ = standard_training(ctx, data)
    assert torch.equal(seen[-1], predict(model, data.x))


# --- determinism -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, params", [(ConfidenceProxy, {}), (EntropyProxy, {}), (HoldoutRetraining, {"finetune_epochs": 3}),
                                         (LossCurvature, {"draws": 2, "every": 2})], ids=lambda v: getattr(v, "name", ""))
def test_scores_are_deterministic_under_a_seed(cls, params):
    data, _, ctx = noisy_digits()
    small = data.subset(torch.arange(300), "determinism")
    short = attrs.evolve(ctx, recipe=attrs.evolve(ctx.recipe, epochs=6))
    runs = []
    for seed in (0, 0, 1):
        _learning_curve.cache_clear()
        runs.append(cls(**params).score(small, attrs.evolve(short, seed=seed)))
    check_scores(runs[0], 300)
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


# --- estimators --------------------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), classes=st.integers(2, 6))
def test_hutchinson_finite_difference_estimates_trace_of_squared_input_hessian(seed, classes):
    """For a linear softmax model H_x = Wᵀ(diag p − ppᵀ)W exactly; 2,000 Rademacher draws per sample (400
    copies × 5 draws) estimate Tr(H²) within 20 % (the estimator's relative sd is at most √(2/2000) ≈ 3 %)."""
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, classes)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(classes, 16, generator=g, dtype=torch.float64))
    x = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (3,), generator=g)
    estimate = curvature(model, x.repeat(400, 1, 1, 1), y.repeat(400), 1e-4, 5, g).view(400, 3).mean(0)
    w = model[1].weight.detach()
    p = model(x).softmax(1).detach()
    for i in range(3):
        h = w.T @ (torch.diag(p[i]) - torch.outer(p[i], p[i])) @ w
        exact = float((h @ h).trace())
        assert abs(float(estimate[i]) - exact) <= 0.2 * exact + 1e-9


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), classes=st.integers(2, 12), scale=st.floats(0.1, 30))
def test_symmetric_kl_is_symmetric_nonnegative_and_zero_on_equal_predictions(seed, classes, scale):
    g = torch.Generator().manual_seed(seed)
    a, b = (scale * torch.randn(8, classes, generator=g, dtype=torch.float64) for _ in range(2))
    d = symmetric_kl(a, b)
    assert bool(torch.isfinite(d).all()) and bool((d >= -1e-12).all())
    assert torch.allclose(d, symmetric_kl(b, a)) and bool((symmetric_kl(a, a) == 0).all())

    def kl(p, q):  # KL(p ‖ q) per row, from logits
        return F.kl_div(q.log_softmax(1), p.log_softmax(1), log_target=True, reduction="none").sum(1)

    assert torch.allclose(d, 0.5 * (kl(a, b) + kl(b, a)))


# --- parameters and recipes -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls, params, match", [
    (LossCurvature, {"h": 0.0}, r"^h \(.*\) must be > 0"),
    (LossCurvature, {"h": -1e-3}, r"^h \(.*\) must be > 0"),
    (LossCurvature, {"draws": 0}, r"^draws \(.*\) must be ≥ 1"),
    (LossCurvature, {"every": 0}, r"^every \(.*\) must be ≥ 1"),
    (HoldoutRetraining, {"folds": 1}, r"^folds \(.*\) must be ≥ 2"),
    (HoldoutRetraining, {"finetune_epochs": 0}, "finetune_epochs must be ≥ 1"),
    (HoldoutRetraining, {"finetune_lr": 0.0}, "finetune_lr must be > 0"),
])
def test_invalid_parameters_are_rejected_with_a_clear_message(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(**params)


@pytest.mark.parametrize("cls", [ConfidenceProxy, MaxConfidenceProxy, EntropyProxy, CorrectnessProxy, HoldoutRetraining, LossCurvature])
def test_a_recipe_without_epochs_is_an_error(cls):
    splits = tiny_splits()
    _learning_curve.cache_clear()
    with pytest.raises(ValueError, match="at least one epoch"):
        cls().score(splits.train, tiny_context(splits, budget=None, recipe=Recipe(epochs=0)))


def test_holdout_retraining_needs_a_sample_per_fold():
    splits = tiny_splits()
    with pytest.raises(ValueError, match="at least 4 samples"):
        HoldoutRetraining(folds=4).score(splits.train.subset(torch.arange(3)), tiny_context(splits, budget=None))
