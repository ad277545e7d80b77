"""``neggrad-plus`` (NegGrad+; Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

Each step minimises  α·CE(retain batch) − (1 − α)·CE(forget batch), one batch of each, for ``epochs``
passes over the retain set (the forget set is cycled). Published: α ≈ 0.95–0.99, lr 0.01, 5 epochs.

Released code: the SCRUB authors' notebook (meghdadk/SCRUB, ``small_scale_unlearning.ipynb``,
``run_neggrad_epoch``); ``tests/plugins/unlearners/test_neggrad_plus.py`` checks the first step's objective against
it. Deviations: the notebook adds α·(wd/2)·‖θ − θ₀‖² to the retain term (a pull toward the original
weights) and steps with plain SGD in evaluation mode; dememo uses the harness's training loop (the recipe's
Nesterov momentum and weight decay toward zero, its schedule, train mode), like every other fine-tuning
unlearner here, and no anchor term.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch.nn.functional as F

import dememo
from dememo import validate


@attrs.define
class NegGradPlus(dememo.Unlearner):
    """Descend on retain and ascend on forget, weighted α : (1 − α)."""

    name: ClassVar[str] = "neggrad-plus"
    version: ClassVar[str] = "1"
    search_space: ClassVar[dict[str, tuple]] = {"alpha": (0.9, 0.95, 0.99), "lr": (0.003, 0.01, 0.03), "epochs": (2, 5)}
    alpha: float = 0.99
    lr: float = 0.01
    epochs: int = 5

    def __attrs_post_init__(self):
        validate.in_range(0, 1, alpha=self.alpha)

    def unlearn(self, model, task, ctx):
        a = self.alpha

        def loss(m, x, y, fx, fy):
            return a * F.cross_entropy(m(x), y) - (1 - a) * F.cross_entropy(m(fx), fy)

        ctx.fit(model, task.retain, paired=task.forget, loss=loss, epochs=self.epochs, lr=self.lr,
                schedule="cosine", desc="neggrad+")
        return model


@dememo.hookimpl
def register_unlearners(register):
    register(NegGradPlus)
