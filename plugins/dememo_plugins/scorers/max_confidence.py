"""``max-confidence``: the maximum-softmax learning-speed proxy of memorization, inverted (higher = more memorized).

Jiang et al., "Characterizing Structural Regularities of Labeled Data in Overparameterized Models" (ICML
2021) propose cheap proxies of the consistency score read off one training run; Zhao & Triantafillou,
"Scalability of memorization-based machine unlearning" (arXiv 2410.16516), use the running mean of the
*maximum* softmax probability as one memorization proxy (their "max confidence"). It correlates
negatively with Feldman–Zhang memorization, so dememo returns

    score_i = 1 − (1/T) Σ_t max_k p_t(k | x_i),

the mean over the T epochs of one standard training on the scored data, recorded at the end of each epoch
in evaluation mode. Unlike the C-proxy (``confidence``) it ignores the label: a sample predicted
confidently as the *wrong* class scores low here. It ranks mislabeled samples high only while the model
hesitates between the given and the true label, so on label noise it is weaker than ``confidence``.
Measured AUC for 5 % flipped labels (tests/plugins/scorers/test_proxy_family.py): 0.97–0.98 where the recipe
memorizes them (digits and noisy-shapes, no weight decay, 60 epochs), 0.74–0.85 under the quick digits
recipe and 0.54–0.61 under the quick noisy-shapes recipe, which fit few of them.

Choices: the training run, its record and the end-of-epoch evaluation pass are those of ``confidence``
(``_learning_curve``: same initial weights and batch order as standard training, shared in process).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo

from dememo_plugins.scorers._learning_curve import learning_curve


@attrs.define
class MaxConfidenceProxy(dememo.Scorer):
    """1 − maximum softmax probability averaged over the epochs of standard training."""

    name: ClassVar[str] = "max-confidence"
    version: ClassVar[str] = "1"

    def score(self, data, ctx):
        return 1.0 - learning_curve(data, ctx, desc="max-confidence proxy").running_mean("max_confidence")


@dememo.hookimpl
def register_metrics(register):
    register(MaxConfidenceProxy)
