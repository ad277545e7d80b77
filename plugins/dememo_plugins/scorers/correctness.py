"""``correctness``: the learning-speed (binary accuracy) proxy of memorization, inverted (higher = more memorized).

Jiang et al., "Characterizing Structural Regularities of Labeled Data in Overparameterized Models" (ICML
2021): samples that are learned late or are forgotten again during training are the irregular ones;
the cumulative training accuracy of a sample is their learning-speed proxy of the consistency score
("binary accuracy" in Zhao & Triantafillou, arXiv 2410.16516, Spearman ≈ −0.7 to −0.9 with Feldman–Zhang
memorization). dememo returns

    score_i = 1 − (1/T) Σ_t 1[argmax_k p_t(k | x_i) = y_i],

the fraction of the T epochs of one standard training on the scored data at whose end the sample was
misclassified (evaluation mode). Scores take only T + 1 values (ties are common; consumers that bucket
scores must break them, as ``dememo.forget`` does).

Choices: the training run, its record and the end-of-epoch evaluation pass are those of ``confidence``
(``_learning_curve``: same initial weights and batch order as standard training, shared in process).
Jiang et al. record correctness at every checkpoint they save; one record per epoch is dememo's choice.
Measured AUC for 5 % flipped labels (tests/plugins/scorers/test_proxy_family.py): ≥ 0.999 on digits and
noisy-shapes when the recipe memorizes them, 0.97–0.99 under the quick recipes, which fit few of them.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo

from dememo_plugins.scorers._learning_curve import learning_curve


@attrs.define
class CorrectnessProxy(dememo.Scorer):
    """1 − fraction of training epochs at whose end the sample is classified correctly (learning speed)."""

    name: ClassVar[str] = "correctness"
    version: ClassVar[str] = "1"

    def score(self, data, ctx):
        return 1.0 - learning_curve(data, ctx, desc="correctness proxy").running_mean("correct")


@dememo.hookimpl
def register_metrics(register):
    register(CorrectnessProxy)
