"""Projected gradient steps on input perturbations, batched: the primitive behind error-minimizing and
error-maximizing poisons and adversarial training.

This is a general facility, not a method: it optimises δ inside a ``Budget`` ball for any per-batch loss.
Methods differ in the loss (untargeted, targeted, over an ensemble), the direction (``"min"`` for
error-minimizing noise, ``"max"`` for adversarial examples) and the schedule; they share the step and the
projection, which are easy to get subtly wrong:

- L∞ step: δ ← δ ± α·sign(∇δ L); L2 step: δ ← δ ± α·∇δ L / ‖∇δ L‖₂ (per sample).
- projection: onto the ε-ball (L∞: clamp; L2: rescale samples whose norm exceeds ε), then onto the
  valid image range, δ ← clip(x + δ, 0, 1) − x, so the stored δ is exactly the applied perturbation
  (and the negative part of δ is never dropped by clamping x before adding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dememo.budget import Budget, per_sample_norm

#: loss(x_perturbed, y) -> scalar (summed over the batch, so the per-sample gradient does not shrink with
#: the batch size)
BatchLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_loss(model: nn.Module | list[nn.Module]) -> BatchLoss:
    """Summed cross-entropy of ``model`` (or the mean over an ensemble of models) on the perturbed batch."""
    models = model if isinstance(model, (list, tuple)) else [model]

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(F.cross_entropy(m(x), y, reduction="sum") for m in models) / len(models)

    return loss


def project(delta: torch.Tensor, budget: Budget, x: torch.Tensor | None = None) -> torch.Tensor:
    """δ projected onto the budget ball and, if ``x`` is given, onto the image range (x + δ ∈ [0, 1])."""
    if budget.norm == "linf":
        delta = delta.clamp(-budget.eps, budget.eps)
    elif budget.norm == "l2":
        norms = per_sample_norm(delta, "l2").view(-1, *[1] * (delta.dim() - 1))
        delta = delta * (budget.eps / norms.clamp_min(1e-12)).clamp(max=1.0)
    else:
        raise ValueError(f"PGD is defined for linf and l2 budgets, not {budget.norm!r}")
    if x is not None:
        delta = (x + delta).clamp(0, 1) - x
    return delta


def step(delta: torch.Tensor, grad: torch.Tensor, budget: Budget, alpha: float, direction: Literal["min", "max"]) -> torch.Tensor:
    """One steepest-descent (``min``) or -ascent (``max``) step of size ``alpha`` in the budget's norm."""
    sign = 1.0 if direction == "max" else -1.0
    if budget.norm == "linf":
        return delta + sign * alpha * grad.sign()
    if budget.norm == "l2":
        norms = per_sample_norm(grad, "l2").view(-1, *[1] * (grad.dim() - 1)).clamp_min(1e-12)
        return delta + sign * alpha * grad / norms
    raise ValueError(f"PGD is defined for linf and l2 budgets, not {budget.norm!r}")


def random_start(shape: tuple[int, ...], budget: Budget, generator: torch.Generator) -> torch.Tensor:
    """A uniform draw from the ball: U[−ε, ε] per pixel for L∞; for L2 a uniformly random direction with
    radius ε·U^(1/d) (uniform in volume)."""
    if budget.norm == "linf":
        return budget.uniform(shape, generator)
    if budget.norm == "l2":
        g = torch.randn(shape, generator=generator, device=generator.device)
        g = g / per_sample_norm(g, "l2").clamp_min(1e-12).view(-1, *[1] * (len(shape) - 1))
        d = max(1, int(torch.tensor(shape[1:]).prod()))
        r = torch.rand(shape[0], generator=generator, device=generator.device) ** (1 / d)
        return g * (budget.eps * r).view(-1, *[1] * (len(shape) - 1))
    raise ValueError(f"PGD is defined for linf and l2 budgets, not {budget.norm!r}")


def pgd(
    loss: BatchLoss,
    x: torch.Tensor,
    y: torch.Tensor,
    budget: Budget,
    *,
    steps: int,
    alpha: float,
    direction: Literal["min", "max"],
    delta: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``steps`` projected steps on a batch; returns δ (detached), with x + δ ∈ [0, 1] and δ in budget.

    ``delta`` is the starting point (e.g. the current poison); without it, a random start from
    ``generator`` if given, else zero. Model parameters are not differentiated (only δ is), so callers
    need not freeze them; the caller chooses train/eval mode.
    """
    if delta is None:
        if generator is None:
            delta = torch.zeros_like(x)
        else:  # in the images' memory layout (channels-last on the device): measured 10-20 % faster steps
            delta = torch.empty_like(x).copy_(random_start(tuple(x.shape), budget, generator))
    delta = project(delta.detach(), budget, x)
    for _ in range(steps):
        d = delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(x + d, y), d)
        delta = project(step(delta.detach(), grad, budget, alpha, direction), budget, x)
    return delta.detach()


def pgd_dataset(
    loss: BatchLoss,
    x: torch.Tensor,
    y: torch.Tensor,
    budget: Budget,
    *,
    steps: int,
    alpha: float,
    direction: Literal["min", "max"],
    delta: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 512,
    progress: Callable[..., object] | None = None,
) -> torch.Tensor:
    """``pgd`` over a whole set, batch by batch (sample-wise δ; each batch runs all its steps)."""
    out = torch.empty_like(x)
    starts = range(0, len(x), batch_size)
    for start in (progress(starts, "pgd") if progress is not None else starts):  # type: ignore[operator]
        sl = slice(start, start + batch_size)
        out[sl] = pgd(loss, x[sl], y[sl], budget, steps=steps, alpha=alpha, direction=direction,
                      delta=None if delta is None else delta[sl], generator=generator)
    return out
