"""``weight-noise``: Gaussian weight perturbation θ̂ + σ·N(0, I) (model stage).

The probe behind *shallow dememorization* (SoK, arXiv 2605.11592; certified learnability): if a small
random move in weight space brings back accuracy that poisoning or unlearning removed, the knowledge was
hidden, not gone. Noise is added to every floating-point parameter with absolute standard deviation
``sigma``; ``draws`` independent perturbations are returned and every metric is averaged over them.

The perturbation is the one PUE's released code draws for its certificate
(``NeuralSec/certified-data-learnability``, ``certify.py``: σ·``randn_like`` added to every
``named_parameters`` tensor, buffers untouched);
``tests/test_reference_weight_space.py`` checks it. PUE evaluates N = 1,000 such draws for a quantile (the
``certified-learnability`` metric); this attack averages the metrics over a few.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import attrs
import torch

import dememo


@attrs.define
class WeightNoise(dememo.Attack):
    """Gaussian weight noise θ + σ·N(0, I) on all parameters, averaged over draws."""

    name: ClassVar[str] = "weight-noise"
    version: ClassVar[str] = "1"
    stages: ClassVar[tuple[str, ...]] = ("model",)
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
