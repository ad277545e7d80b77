"""``ssd``: Selective Synaptic Dampening (Foster, Schoepf & Brintrup, "Fast Machine Unlearning Without
Retraining Through Selective Synaptic Dampening", AAAI 2024).

No training. With []_D and []_f the diagonals of the Fisher information of the full training data
D = D_r ∪ D_f and of the forget set D_f, every parameter θ_i with

    []_{f,i} > α · []_{D,i}                         (selection)

is multiplied by

    β_i = min(λ · []_{D,i} / []_{f,i}, 1)           (dampening; β ≤ 1, so |θ_i| never grows)

and every other parameter is left exactly as it was. Published: λ = 1, α = 10 (ResNet-18; the released
full-class ViT runs use α = 5, and the face-recognition runs α = 50, λ = 0.1).

Authors' code: github.com/if-loops/selective-synaptic-dampening, ``ssd.py`` (``ParameterPerturber``:
``calc_importance`` and ``modify_weight``) called from ``src/forget_random_strategies.py`` /
``forget_full_class_strategies.py`` (``ssd_tuning``), the loaders built in ``src/forget_random_main.py``.
What that code computes, and what dememo does:

- **Importance** (``importance``). The paper defines []· as the diagonal of the Fisher information. The
  released ``calc_importance`` puts the model in evaluation mode and, for each mini-batch of an
  *unshuffled* loader, squares the gradient of the batch's *mean* cross-entropy; the importance is the mean
  of those squares over the batches. The forget loader has batch size 128; the full-data loader is the
  retain set followed by the forget set (``ConcatDataset((retain, forget))``), unshuffled, batch size 128.
  ``importance="batch-mean"`` is exactly that estimator (``batch_size`` = 128, the same concatenation
  order, ``_fisher.batch_mean_importance``). The default ``importance="per-sample"`` is the paper's
  definition: the diagonal *empirical* Fisher, the mean over samples of the squared per-sample gradient of
  the label's log-likelihood, computed exactly (``torch.func.vmap`` over ``grad``,
  ``_fisher.empirical_fisher_diagonal``), also in evaluation mode; it is the released estimator with
  batches of one sample, and it depends neither on the batch size nor on which samples share a batch (the
  released one does: mean gradients of mixed batches partly cancel). []_D is then assembled from the two
  parts, []_D = (|D_r|·[]_r + |D_f|·[]_f)/|D|, so the forget set's gradients are computed once.
- **Selection and dampening** as released (``modify_weight`` with ``exponent`` = 1, ``lower_bound`` = 1):
  select where []_f > α·[]_D, multiply by min(λ·[]_D/[]_f, 1); all trainable parameters are candidates
  (weights, biases and normalisation parameters alike); parameters with []_f = 0 are never selected.
- **α and the size of the forget set** (a warning is logged when α ≥ |D|/|D_f|). Both importances are
  *means* (over samples, or over batches), and the full-data mean contains the forget set's own terms,
  weighted by their share: []_D ≥ (|D_f|/|D|)·[]_f for every parameter with the per-sample estimator (and
  with the batch-mean one when the forget set fills its own batches, B_D/B_f batches in place of |D|/|D_f|;
  approximately otherwise). So []_f/[]_D can never exceed |D|/|D_f|, and **no parameter can be selected when
  α ≥ |D|/|D_f|**: SSD then returns the original model. The published α = 10 was used where
  |D|/|D_f| ≥ 20 (100 CIFAR-10 images, one CIFAR-20/100 class); on a 10 % forget set (the quick suite)
  it selects nothing. The search space therefore covers α below |D|/|D_f|.
- Measured with the per-sample default (seed 0; unchanged by the batch-mean option): on noisy-shapes with
  class 0 forgotten, α = 7 dampens 22 of the small CNN's 14,826 weights, forget accuracy 0.95 → 0.0, the
  other classes' test accuracy unchanged (0.92); on digits class 0, α = 5 gives an average gap to retrain
  of 0.0005. On 10 % random forgetting the embedded models barely memorise and SSD stays near the original
  (gap over seeds 0–2 at α = 5: noisy-shapes 0.042, digits 0.027; original 0.042 / 0.032). The
  batch-mean option is not yet measured on the quick suite (pending its re-run).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs
import torch

import dememo
from dememo import validate

from . import _fisher


IMPORTANCE = ("per-sample", "batch-mean")


#: (alpha, |D|/|D_f|) pairs already warned about in this process
_WARNED: set[tuple[float, float]] = set()


@attrs.define
class SelectiveSynapticDampening(dememo.Unlearner):
    """Dampen parameters far more important to the forget set than to all training data (Fisher ratio)."""

    name: ClassVar[str] = "ssd"
    version: ClassVar[str] = "1"  # unchanged: the default output is the same; batch-mean is new
    search_space: ClassVar[dict[str, tuple]] = {"alpha": (2.0, 3.0, 5.0, 7.0, 10.0), "lam": (0.5, 1.0)}
    alpha: float = 10.0
    lam: float = 1.0
    importance: Literal["per-sample", "batch-mean"] = "per-sample"
    batch_size: int = 128  # batch-mean importance only (the released loaders' batch size)

    def __attrs_post_init__(self):
        validate.positive(about="selection weighting", alpha=self.alpha)
        validate.positive(about="dampening constant λ", lam=self.lam)
        validate.one_of(IMPORTANCE, importance=self.importance)
        validate.at_least(1, batch_size=self.batch_size)

    def importances(self, model, task, ctx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat float64 ([]_D, []_f, selected) over the trainable parameters."""
        n_f, n_r = len(task.forget), len(task.retain)
        if self.importance == "batch-mean":
            forget = _fisher.batch_mean_importance(model, [task.forget], self.batch_size, ctx,
                                                   "ssd: forget importance").double()
            full = _fisher.batch_mean_importance(model, [task.retain, task.forget], self.batch_size, ctx,
                                                 "ssd: full importance").double()
            return full, forget, forget > self.alpha * full
        forget = _fisher.empirical_fisher_diagonal(model, task.forget, ctx, "ssd: forget importance").double()
        retain = _fisher.empirical_fisher_diagonal(model, task.retain, ctx, "ssd: retain importance").double()
        full = (n_r * retain + n_f * forget) / (n_r + n_f)
        # []_f > α·[]_D  ⇔  (n − α·n_f)·[]_f > α·n_r·[]_r, compared without the rounding of []_D, so that a
        # parameter exactly at the bound (no retain gradient, ratio n/n_f) is not selected at α = n/n_f.
        selected = ((n_f + n_r) - self.alpha * n_f) * forget > self.alpha * n_r * retain
        return full, forget, selected

    def unlearn(self, model, task, ctx):
        if len(task.forget) == 0:
            return model
        bound = (len(task.retain) + len(task.forget)) / len(task.forget)
        if self.alpha >= bound and (self.alpha, round(bound, 3)) not in _WARNED:
            _WARNED.add((self.alpha, round(bound, 3)))  # once per setting: shadow-model metrics replay it many times
            ctx.log.warning("ssd: alpha = %g ≥ |D|/|D_f| = %.3g: the forget set's importance can never exceed "
                            "alpha times the full data's (it is part of it), so %s parameter is dampened; "
                            "choose alpha below %.3g", self.alpha, bound,
                            "no" if self.importance == "per-sample" else "(almost) no", bound)
        full, forget, selected = self.importances(model, task, ctx)
        ratio = self.lam * full / forget.clamp_min(torch.finfo(forget.dtype).tiny)
        beta = torch.where(selected, ratio.clamp(max=1.0), torch.ones_like(forget))
        with torch.no_grad():
            for (_, p), b, s in zip(_fisher.trainable(model), _fisher.split_flat(model, beta),
                                    _fisher.split_flat(model, selected), strict=True):
                p.copy_(torch.where(s, p * b.to(p.dtype), p))
        return model


@dememo.hookimpl
def register_unlearners(register):
    register(SelectiveSynapticDampening)
