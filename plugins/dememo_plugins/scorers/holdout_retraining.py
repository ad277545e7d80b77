"""``holdout-retraining``: how far predictions move when the model is fine-tuned on held-out data (higher = more memorized).

Carlini, Erlingsson & Papernot, "Distribution Density, Tails, and Outliers in Machine Learning: Metrics
and Applications" (arXiv 1910.13427; earlier "Prototypical Examples in Deep Learning"), *holdout
retraining*: train a model f on the training data, fine-tune it on held-out data of the same
distribution to f', and score each training example by the symmetric KL divergence between f(x) and
f'(x). What the model knows about a well-represented example is confirmed by other data and survives
the fine-tuning; what it memorized about an outlier or a mislabeled example is not, and moves. Zhao &
Triantafillou (arXiv 2410.16516) use it as a memorization proxy (Spearman ≈ 0.6 with Feldman–Zhang,
positive: no inversion is needed). dememo returns

    score_i = ½ [KL(f(x_i) ‖ f'(x_i)) + KL(f'(x_i) ‖ f(x_i))] = ½ Σ_k (p_k − p'_k)(log p_k − log p'_k),

computed from log-softmax, so it is finite without the 1e-10 clamp of the RUM code.

Choices (the held-out data is dememo's):

- A scorer sees only the data it scores (``score(data, ctx)``), not the dataset's validation split, so the
  held-out data comes from ``data`` itself by cross-fitting: ``data`` is split into ``folds`` seeded,
  near-equal parts (``ctx.derive``). For each part k, a model is trained on the other parts with standard
  training (the recipe, ``ctx.for_training_on`` that subset: what ``ctx.train`` would do on it), then
  fine-tuned on part k, which it has never seen; each sample outside part k gets the divergence between
  the two models. A sample's score is the mean over the ``folds − 1`` models that trained on it. With
  the default ``folds = 2`` every sample is scored once, by a model trained on half of the data (the
  RUM code fine-tunes on the test split instead; Feldman–Zhang themselves train on subsets).
- Fine-tuning: ``finetune_epochs = 30`` epochs on the held-out part with the recipe's optimiser at a
  constant learning rate ``finetune_lr`` (default: the recipe's peak ``lr``), as the RUM code fine-tunes at
  its training rate without a schedule for up to 30 epochs (it stops early once the loss has not improved
  for 4 epochs; dememo always runs all of them, so the cost is fixed). Measured on digits with 5 % of the
  labels flipped (AUC of the score for "is mislabeled", seeds 0 / 1, quick recipe): 1 epoch 0.79 / 0.79,
  3: 0.79 / 0.81, 10: 0.88 / 0.89, 30: 0.91 / 0.94, 60: 0.92 / 0.95; 30 epochs at a constant 0.01:
  0.89 / 0.90; 3 folds instead of 2: 0.91 / 0.92.
- Cost: ``folds`` trainings on (folds − 1)/folds of the data plus ``folds`` fine-tunings on 1/folds of it,
  i.e. T + 30 full-data epochs with the defaults for a T-epoch recipe (digits 2×, noisy-shapes 3× standard
  training).

What it measures is memorization *by the final model*: under a recipe that does not fit the mislabeled
samples (the quick suite's noisy-shapes recipe ends with 1–3 % of them fitted), their predictions are the
generic ones and hardly move, so it detects them poorly there (AUC 0.50–0.62 over four seeded flips, where
``confidence`` reaches 0.98–0.996); under a recipe that memorizes them (no weight decay, 60 epochs) it
reaches 0.96–0.98 on digits and 0.84–0.90 on noisy-shapes.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import attrs
import torch

import dememo
from dememo import validate


def symmetric_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """½ [KL(p ‖ q) + KL(q ‖ p)] per row, from logits."""
    log_p, log_q = logits_p.log_softmax(1), logits_q.log_softmax(1)
    return 0.5 * ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(1)


@attrs.define
class HoldoutRetraining(dememo.Scorer):
    """Symmetric KL between predictions before and after fine-tuning on held-out data (cross-fitted folds)."""

    name: ClassVar[str] = "holdout-retraining"
    version: ClassVar[str] = "1"
    folds: int = 2
    finetune_epochs: int = 30
    finetune_lr: float | None = None

    def __attrs_post_init__(self):
        validate.at_least(2, about="one part held out, the rest trained on", folds=self.folds)
        validate.at_least(1, finetune_epochs=self.finetune_epochs)
        validate.positive(none="the recipe's lr", finetune_lr=self.finetune_lr)

    def score(self, data, ctx):
        n = len(data)
        if ctx.recipe.epochs < 1:
            raise ValueError("the holdout-retraining proxy needs a recipe with at least one epoch")
        if n < self.folds:
            raise ValueError(f"holdout-retraining with {self.folds} folds needs at least {self.folds} samples, got {n}")
        order = torch.randperm(n, generator=ctx.derive("holdout-retraining:folds").generator, device=ctx.device)
        parts = torch.tensor_split(order.to(data.device), self.folds)
        lr = ctx.recipe.lr if self.finetune_lr is None else self.finetune_lr
        total = torch.zeros(n, device=data.device)
        for k in ctx.progress(range(self.folds), "holdout-retraining folds", self.folds):
            held = parts[k]
            kept = torch.cat([p for j, p in enumerate(parts) if j != k])
            train_part, held_part = data.subset(kept, f"holdout:train:{k}"), data.subset(held, f"holdout:held:{k}")
            local = ctx.for_training_on(train_part)
            model = local.new_model()
            local.fit(model, train_part, desc=f"holdout-retraining train {k}")
            tuned = copy.deepcopy(model)
            ctx.derive(f"holdout-retraining:finetune:{k}").fit(tuned, held_part, epochs=self.finetune_epochs, lr=lr,
                                                                schedule="constant", desc=f"holdout-retraining fine-tune {k}")
            total[kept] += symmetric_kl(ctx.predict(model, train_part.x), ctx.predict(tuned, train_part.x))
        return total / (self.folds - 1)


@dememo.hookimpl
def register_metrics(register):
    register(HoldoutRetraining)
