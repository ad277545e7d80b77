"""``confidence``: the confidence-based memorization proxy (C-proxy), inverted so that higher = more memorized.

Jiang et al., "Characterizing Structural Regularities of Labeled Data in Overparameterized Models" (ICML
2021) define learning-speed proxies of the consistency score; Zhao et al. ("What makes unlearning hard and
what to do about it", NeurIPS 2024, the RUM paper) use the *C-proxy* — the true-class softmax confidence
averaged over training epochs — in place of Feldman–Zhang memorization, with which it correlates strongly
and *negatively* (Spearman ≈ −0.8 to −0.9 in their appendix). dememo returns

    score_i = 1 − (1/T) Σ_t p_t(y_i | x_i),

the running mean taken at the end of each of the T epochs of one standard training on the scored data.
The inversion is done here (the RUM code buckets the raw confidence, which puts the *least* memorized
samples in its "high" bucket), so every consumer ranks by higher = more memorized.

Choices: the model is trained exactly like standard training on the same data (same initial weights and
batch order, ``ctx.for_training_on``), so the scores describe the original model's own training run; the
confidence is measured in evaluation mode at the end of each epoch (the paper records it during training;
an end-of-epoch pass over the N training samples costs one forward pass per epoch and does not depend on
augmentation or dropout state). The run and its record are shared with ``max-confidence``, ``entropy``
and ``correctness`` (``_learning_curve``); the outputs are bit-identical to the first version of this
module, which accumulated the same sums itself.
Measured AUC for 5 % flipped labels (tests/plugins/scorers/test_confidence.py): ≥ 0.998 on digits and
noisy-shapes when the recipe memorizes them, 0.986–0.9999 under the quick recipes.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo

from dememo_plugins.scorers._learning_curve import learning_curve


@attrs.define
class ConfidenceProxy(dememo.Scorer):
    """C-proxy: 1 − true-class confidence averaged over the epochs of standard training."""

    name: ClassVar[str] = "confidence"
    version: ClassVar[str] = "1"

    def score(self, data, ctx):
        return 1.0 - learning_curve(data, ctx, desc="confidence proxy").running_mean("true_confidence")


@dememo.hookimpl
def register_metrics(register):
    register(ConfidenceProxy)
