"""The one-run memorization proxies compared: they rank mislabeled (memorized) samples high, are seeded and validate their parameters.

One-run memorization proxies rank memorized training samples high (higher = more memorized).

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

import attrs
import pytest
import torch

from dememo.testing import tiny_context, tiny_splits
from dememo.training import Recipe
from dememo_plugins.scorers import _learning_curve
from dememo_plugins.scorers._learning_curve import learning_curve
from dememo_plugins.scorers.confidence import ConfidenceProxy
from dememo_plugins.scorers.correctness import CorrectnessProxy
from dememo_plugins.scorers.entropy import EntropyProxy
from dememo_plugins.scorers.holdout_retraining import HoldoutRetraining
from dememo_plugins.scorers.loss_curvature import LossCurvature
from dememo_plugins.scorers.max_confidence import MaxConfidenceProxy

from support.scorers.proxies import noisy_digits

MEMORIZING = Recipe(epochs=60, batch_size=128, lr=0.05, weight_decay=0.0)  # the digits recipe, no weight decay, 2× epochs


def auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """ROC AUC: P(score of a positive > score of a negative), ties counting one half."""
    pos, neg = scores[positive][:, None], scores[~positive][None, :]
    return float((pos > neg).double().mean() + 0.5 * (pos == neg).double().mean())


def check_scores(scores: torch.Tensor, n: int) -> None:
    assert scores.shape == (n,) and scores.dtype.is_floating_point and bool(torch.isfinite(scores).all())


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
