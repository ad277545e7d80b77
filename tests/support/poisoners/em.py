"""Helpers shared by poisoners/test_em.py, poisoners/test_hypo.py, poisoners/test_rem.py, poisoners/test_sep.py, poisoners/test_tap.py."""

from __future__ import annotations

import copy
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import dememo
from dememo.budget import Budget
from dememo.data import Splits
from dememo.testing import tiny_context
from dememo_plugins.datasets.digits import Digits

_DIGITS: dememo.Data | None = None


def digits(n: int = 60) -> dememo.Data:
    """The first ``n`` training images of ``digits`` (all ten classes occur in the first 60)."""
    global _DIGITS
    _DIGITS = _DIGITS or Digits().load(None, False).train
    return _DIGITS.subset(torch.arange(n))


def context(data: dememo.Data, seed: int = 0, budget: Budget | None = None, **kw) -> dememo.Context:
    return tiny_context(Splits(data, data, data), seed=seed, budget=budget, **kw)


@attrs.define
class Fixed(dememo.Architecture):
    """Builds copies of one given model (a surrogate whose weights the test knows)."""

    name: ClassVar[str] = "fixed-test-model"
    version: ClassVar[str] = "1"
    model: nn.Module = attrs.field(factory=nn.Identity)
    hook: object = None  # a forward hook for every copy built
    built: list = attrs.field(factory=list)

    def build(self, input_shape, num_classes):
        self.built.append(copy.deepcopy(self.model))
        if self.hook is not None:
            self.built[-1].register_forward_hook(self.hook)
        return self.built[-1]


def released_sign_descent(model: nn.Module, x: torch.Tensor, start: torch.Tensor, labels: torch.Tensor,
                          eps: float, alpha: float, steps: int) -> torch.Tensor:
    """The released step of both: x' ← clip(x + clamp(x' − α·sign(∇ CE(f(x'), label)) − x, −ε, ε), 0, 1)
    (forgemaster_base.py ``_pgd_step``: δ ← δ − τ·sign(∇δ), then the ε-box, then the image range;
    Delusive-Adversary attacks/step.py ``LinfStep``: the same on x, then clamp to [0, 1])."""
    xp = (x + start).clamp(0, 1)
    for _ in range(steps):
        z = xp.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(z), labels), z)
        xp = (x + (z.detach() - alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return xp
