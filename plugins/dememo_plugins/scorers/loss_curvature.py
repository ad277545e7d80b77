"""``loss-curvature``: input-loss curvature averaged over training (higher = more memorized).

Garg, Ravikumar & Roy, "Memorization Through the Lens of Curvature of Loss Function Around Samples"
(ICML 2024, arXiv 2307.05831). The curvature of the loss ℓ(x, y; W) around a training sample, taken with
respect to the *input*, is high for long-tailed, mislabeled and conflicting samples — the memorized ones —
and its average over training tracks Feldman–Zhang memorization (Spearman ≈ 0.7 in Zhao & Triantafillou,
arXiv 2410.16516, *positive*: no inversion is needed). The paper estimates Tr(H²), H = ∇²_x ℓ, with
Hutchinson's identity Tr(H²) = E_v ‖Hv‖² for Rademacher v and a finite difference of input gradients,
Hv ≈ (∇_x ℓ(x + h v) − ∇_x ℓ(x)) / h, and averages over the training epochs (its Eq. 6):

    score_i = (1/|C|) Σ_{t ∈ C} (1/n) Σ_{j=1..n} ‖∇_x ℓ(x_i + h v_j; W_t) − ∇_x ℓ(x_i; W_t)‖² / h²,

with v_j ∈ {−1, +1}^d drawn independently per sample, draw and checkpoint, and C the checkpoints.

Choices:

- ``h = 1e-3`` and ``draws = n = 10`` are the defaults of the authors' curvature routine (their ImageNet
  script passes h = 1e-4; RUM's re-implementation uses h = 0.01). Dividing by h² makes the score an
  estimate of Tr(H²) itself, comparable across h; the ranking is the same without it. The authors' code
  accumulates the unsquared norm ‖·‖; dememo follows the equation (squared), which weights the epochs
  where a sample is sharpest more.
- Checkpoints: the weights at the end of every ``every``-th epoch of one standard training on the scored
  data (same initial weights and batch order as the harness's original model, ``ctx.for_training_on``),
  and always the last epoch. The paper averages over training epochs; the authors' code saves a checkpoint
  every epoch and scores every 4th of them on ImageNet (dememo's default: every epoch, ``every = 1``). The curvature is measured in evaluation mode with the sample's given label;
  measuring changes nothing in the run (it draws from its own generator, ``ctx.derive``).
- Inputs x + h v are not clipped to [0, 1] (h is below one grey level, 1/255); the loss is summed over a
  chunk, which gives every sample its own input gradient because evaluation-mode outputs are per-sample.
- Cost: (n + 1) forward–backward passes over the data per checkpoint, about n + 1 times the training
  itself with ``every = 1``; ``every`` and ``draws`` trade it for noise. Measured AUC of the score for
  "is mislabeled" with 5 % of the labels flipped (quick recipes, seed 0): digits 0.997 (defaults), 0.996
  (n = 2), 0.994 (n = 2, h = 0.01), 0.991 (n = 2, every 3rd epoch); noisy-shapes 0.969 (defaults), 0.967
  (n = 2), 0.959 (n = 2, every 5th epoch). The curvature sees mislabeled samples even where the recipe
  never fits them (noisy-shapes fits 1 %): their loss, and its input gradient, stay large and sharp.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F

import dememo
from dememo import validate

_CHUNK = 1024  # samples per forward–backward pass (memory only: outputs are per-sample)


def input_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇_x ℓ(x_i, y_i) for every sample of a chunk (summed loss, so each row is its own sample's gradient)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), y, reduction="sum")
        return torch.autograd.grad(loss, x)[0]


def curvature(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, h: float, draws: int,
              generator: torch.Generator) -> torch.Tensor:
    """(1/n) Σ_j ‖∇ℓ(x + h v_j) − ∇ℓ(x)‖² / h² per sample, Rademacher v_j from ``generator``."""
    was_training = model.training
    model.eval()
    try:
        out = []
        for start in range(0, len(x), _CHUNK):
            xb, yb = x[start:start + _CHUNK], y[start:start + _CHUNK]
            base = input_gradients(model, xb, yb)
            total = torch.zeros(len(xb), device=x.device)
            for _ in range(draws):
                v = torch.randint(0, 2, xb.shape, generator=generator, device=x.device).to(xb.dtype).mul_(2).sub_(1)
                diff = input_gradients(model, xb + h * v, yb) - base
                total += diff.flatten(1).pow(2).sum(1)
            out.append(total / (draws * h * h))
        return torch.cat(out) if out else torch.zeros(0, device=x.device)
    finally:
        model.train(was_training)


@attrs.define
class LossCurvature(dememo.Scorer):
    """Input-loss curvature Tr(H²) (Hutchinson, finite differences) averaged over training epochs."""

    name: ClassVar[str] = "loss-curvature"
    version: ClassVar[str] = "1"
    h: float = 1e-3
    draws: int = 10
    every: int = 1

    def __attrs_post_init__(self):
        validate.positive(about="the finite-difference step", h=self.h)
        validate.at_least(1, about="Rademacher vectors", draws=self.draws)
        validate.at_least(1, about="checkpoint every k-th epoch", every=self.every)

    def score(self, data, ctx):
        local = ctx.for_training_on(data)
        model = local.new_model()
        draws = ctx.derive("loss-curvature:rademacher").generator
        total = torch.zeros(len(data), device=data.device)
        checkpoints = []
        last = ctx.recipe.epochs

        def record(m, epoch):
            if epoch % self.every == 0 or epoch == last:
                total.add_(curvature(m, data.x, data.y, self.h, self.draws, draws))
                checkpoints.append(epoch)

        local.fit(model, data, after_epoch=record, desc="loss-curvature proxy")
        if not checkpoints:
            raise ValueError("the loss-curvature proxy needs a recipe with at least one epoch and non-empty data")
        return total / len(checkpoints)


@dememo.hookimpl
def register_metrics(register):
    register(LossCurvature)
