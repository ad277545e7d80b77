"""``em``: error-minimizing noise (Huang et al., "Unlearnable Examples", ICLR 2021).

Bi-level min-min problem (paper Eq. 2 and 3):

    min_θ  E_(x,y) [ min_{‖δ‖∞ ≤ ε}  L(f_θ(x + δ), y) ]

solved by alternating (Algorithm 1): ``train_steps`` SGD steps of a surrogate f_θ on (x + δ, y), then
``pgd_steps`` steps of projected gradient *descent* on δ over the whole training set,
δ ← Π_ε(δ − α·sign(∇_δ L)), stopping once the surrogate's error on the poisoned data is below
``stop_error`` (1 % in the paper) or after ``max_rounds``.

- ``mode="sample"``: one δ_i per sample (the gradient of sample i updates δ_i only).
- ``mode="class"``: one δ_c per class; the update uses the summed gradient over the class's samples.

Choices where the paper leaves room: α defaults to ε/10 (the paper's 0.8/255 at ε = 8/255, expressed
relative to ε so it transfers to other budgets); δ starts at U[−ε, ε]; the surrogate is the suite's
architecture with the suite's learning rate and batch size; images are clip(x + δ, 0, 1), and δ is
projected so that the stored perturbation equals the applied one.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs
import torch
import torch.nn.functional as F

import dememo


@attrs.define
class ErrorMinimizing(dememo.Poisoner):
    """Error-minimizing noise (Huang et al., ICLR 2021): min-min bi-level PGD, sample- or class-wise."""

    name: ClassVar[str] = "em"
    version: ClassVar[str] = "1"
    norm: ClassVar[str] = "linf"
    mode: Literal["sample", "class"] = "sample"
    train_steps: int = 10
    pgd_steps: int = 20
    step_fraction: float = 0.1
    stop_error: float = 0.01
    max_rounds: int = 15
    batch_size: int = 512

    def poison(self, data, ctx):
        eps = ctx.budget.eps
        alpha = self.step_fraction * eps
        rows = len(data) if self.mode == "sample" else data.num_classes
        delta = ctx.budget.uniform((rows, *data.shape), ctx.generator)
        surrogate = ctx.new_model()
        for _ in ctx.progress(range(self.max_rounds), "em rounds"):
            poisoned = self._apply(data, delta)
            ctx.fit(surrogate, poisoned, steps=self.train_steps, schedule="constant")
            delta = self._descend(surrogate, data, delta, eps, alpha)
            poisoned = self._apply(data, delta)
            if 1 - ctx.accuracy(surrogate, poisoned) < self.stop_error:
                break
        return self._apply(data, delta).x

    def _apply(self, data, delta):
        per_sample = delta if self.mode == "sample" else delta[data.y]
        x = (data.x + per_sample).clamp(0, 1)
        return dememo.Data(x=x, y=data.y, num_classes=data.num_classes, fingerprint="em-working-copy", index=data.index)

    def _descend(self, model, data, delta, eps, alpha):
        model.eval()
        trainable = [p.requires_grad for p in model.parameters()]  # restored as they were (frozen layers stay frozen)
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(self.pgd_steps):
                grad = torch.zeros_like(delta)
                for start in range(0, len(data), self.batch_size):
                    sl = slice(start, start + self.batch_size)
                    x, y = data.x[sl], data.y[sl]
                    d = (delta[sl] if self.mode == "sample" else delta[y]).detach().requires_grad_(True)
                    loss = F.cross_entropy(model((x + d).clamp(0, 1)), y, reduction="sum")
                    (g,) = torch.autograd.grad(loss, d)
                    if self.mode == "sample":
                        grad[sl] = g
                    else:
                        grad.index_add_(0, y, g)
                delta = (delta - alpha * grad.sign()).clamp(-eps, eps)
                # keep x + δ inside [0, 1] so the stored δ is exactly the applied perturbation
                if self.mode == "sample":
                    delta = (data.x + delta).clamp(0, 1) - data.x
        finally:
            for p, flag in zip(model.parameters(), trainable):
                p.requires_grad_(flag)
            model.train()
        return delta


@dememo.hookimpl
def register_poisoners(register):
    register(ErrorMinimizing)
