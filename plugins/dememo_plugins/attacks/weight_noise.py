"""``weight-noise``: Gaussian weight perturbation θ̂ + σ·N(0, I) (model stage).

The probe behind *shallow dememorization* (SoK, arXiv 2605.11592; certified learnability): if a small
random move in weight space brings back accuracy that poisoning or unlearning removed, the knowledge was
hidden, not gone. Noise is added to every floating-point parameter with absolute standard deviation
``sigma``; ``draws`` independent perturbations are returned and every metric is averaged over them.

The perturbation is the one PUE's released code draws for its certificate
(``NeuralSec/certified-data-learnability``, ``certify.py``: σ·``randn_like`` added to every
``named_parameters`` tensor, buffers untouched);
``tests/plugins/attacks/test_weight_noise.py`` checks it. PUE evaluates N = 1,000 such draws for a quantile (the
``certified-learnability`` metric); this attack averages the metrics over a few.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import attrs
import torch

import dememo


_HOW = ("of each method's model with Gaussian noise of standard deviation σ added to every weight (the weight-noise "
        "attack's variants in the suite; each point is the mean over the attack's draws, unlike the depth metric's "
        "q-quantile); σ = 0 is the unattacked model.")
#: the report's accuracy-under-weight-noise figure: test accuracy (unlearnability), forget accuracy (unlearning)
SWEEPS = (
    dememo.Sweep("sigma", axis="weight-noise σ", column="test_acc", tracks="unlearnability", figure="weight-noise",
                 title="clean test accuracy under weight noise", order=50,
                 caption=f"Clean test accuracy (%) {_HOW} Lower is better for the poison: accuracy that climbs back "
                         "under small noise means the clean knowledge was hidden near the weights, not kept out of them "
                         "(shallow dememorization)."),
    dememo.Sweep("sigma", axis="weight-noise σ", column="forget_acc", tracks="unlearning", figure="weight-noise",
                 title="forget-set accuracy under weight noise", order=50,
                 caption=f"Forget-set accuracy (%) {_HOW} Best for the unlearner is a curve that stays with retrain's "
                         "(the dashed grey reference): forget-set accuracy that comes back under small noise was "
                         "hidden, not removed."),
)

@attrs.define
class WeightNoise(dememo.Attack):
    """Gaussian weight noise θ + σ·N(0, I) on all parameters, averaged over draws."""

    name: ClassVar[str] = "weight-noise"
    version: ClassVar[str] = "1"
    stages: ClassVar[tuple[str, ...]] = ("model",)
    sweeps: ClassVar[tuple[dememo.Sweep, ...]] = SWEEPS
    sigma: float = 0.01
    draws: int = 3

    def __attrs_post_init__(self):
        if self.sigma < 0 or self.draws < 1:
            raise ValueError("weight-noise needs sigma ≥ 0 and draws ≥ 1")

    def attack(self, model, data, ctx):
        out = []
        for _ in range(self.draws):
            noisy = copy.deepcopy(model)
            with torch.no_grad():
                for p in noisy.parameters():
                    p.add_(torch.randn(p.shape, generator=ctx.generator, device=p.device) * self.sigma)
            out.append(noisy)
        return out


@dememo.hookimpl
def register_attacks(register):
    register(WeightNoise)
