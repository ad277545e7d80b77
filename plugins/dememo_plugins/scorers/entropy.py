"""``entropy``: the prediction-entropy learning-speed proxy of memorization (higher = more memorized).

Jiang et al., "Characterizing Structural Regularities of Labeled Data in Overparameterized Models" (ICML
2021) and Zhao & Triantafillou, "Scalability of memorization-based machine unlearning" (arXiv 2410.16516)
use the running mean over training of the *negative entropy* Σ_k p log p of the softmax output as a
proxy; like confidence it correlates negatively with Feldman–Zhang memorization. dememo returns it
inverted, i.e. the mean entropy itself:

    score_i = (1/T) Σ_t H_t(x_i),   H_t(x_i) = −Σ_k p_t(k | x_i) log p_t(k | x_i)   (nats),

over the T epochs of one standard training on the scored data, recorded at the end of each epoch in
evaluation mode. Scores lie in [0, log C] for C classes. The entropy is computed from log-softmax, so it is
finite even where a probability underflows to zero (the RUM code takes log of the softmax and then has to
drop the resulting NaN/inf samples before ranking).

Choices: the training run, its record and the end-of-epoch evaluation pass are those of ``confidence``
(``_learning_curve``: same initial weights and batch order as standard training, shared in process).
Like ``max-confidence`` it ignores the label. Measured AUC for 5 % flipped labels
(tests/plugins/scorers/test_proxy_family.py): 0.95–0.97 where the recipe memorizes them, 0.75–0.85 under the
quick digits recipe and 0.55–0.61 under the quick noisy-shapes recipe, which fit few of them.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo

from dememo_plugins.scorers._learning_curve import learning_curve


@attrs.define
class EntropyProxy(dememo.Scorer):
    """Softmax entropy averaged over the epochs of standard training (the negative-entropy proxy, inverted)."""

    name: ClassVar[str] = "entropy"
    version: ClassVar[str] = "1"

    def score(self, data, ctx):
        return learning_curve(data, ctx, desc="entropy proxy").running_mean("entropy")


@dememo.hookimpl
def register_metrics(register):
    register(EntropyProxy)
