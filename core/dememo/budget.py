"""The threat model of a poison: a norm and a radius, checked by the harness on every poisoner's output.

A violation is an error for that cell, never a silent clip: papers differ in whether and where they clip,
and a harness that repairs outputs would hide exactly the bugs a benchmark must expose.
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch

from dememo.errors import BudgetViolation

Norm = Literal["linf", "l2", "l0", "none"]

#: Absolute slack on the budget, for float32 rounding of x + δ. Far below one 8-bit step (1/255).
TOLERANCE = 1e-5


@attrs.frozen
class Budget:
    """``norm`` in {linf, l2, l0, none}; ``eps`` in image space ([0, 1] pixels; L0 counts pixel positions).

    ``none`` states a threat model that is not an ℓp ball (e.g. CUDA's convolution); the harness then
    checks only finiteness and pixel range.
    """

    norm: Norm
    eps: float

    def uniform(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Perturbations drawn uniformly from the L∞ ball of radius ``eps`` (U[−ε, ε] per pixel), on the
        generator's device: the usual random start and the random-noise baseline."""
        if self.norm != "linf":
            raise ValueError(f"uniform sampling is defined for the linf ball, not {self.norm!r}")
        u = torch.rand(shape, generator=generator, device=generator.device)
        return (2 * u - 1) * self.eps

    def scale_to(self, delta: torch.Tensor) -> torch.Tensor:
        """Rescale each sample's perturbation to norm exactly ``eps`` (L2: δ·ε/‖δ‖₂; L∞: δ·ε/‖δ‖∞), as
        model-free poisons that fill their budget do. A zero perturbation stays zero."""
        if self.norm not in ("l2", "linf"):
            raise ValueError(f"scaling to the budget is defined for l2 and linf, not {self.norm!r}")
        norms = per_sample_norm(delta, self.norm).clamp_min(1e-12).view(-1, *[1] * (delta.dim() - 1))
        return delta * (self.eps / norms)

    def describe(self) -> str:
        if self.norm == "none":
            return "unbounded (not an ℓp threat model)"
        if self.norm == "linf" and self.eps < 1:
            return f"L∞ ≤ {self.eps:.4g} ({self.eps * 255:.3g}/255)"
        return {"linf": "L∞", "l2": "L2", "l0": "L0"}[self.norm] + f" ≤ {self.eps:.4g}"


def per_sample_norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Norm of each sample's perturbation. L0 counts pixel positions (H×W) where any channel changed."""
    flat = delta.flatten(1)
    if norm == "linf":
        return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(len(flat))
    if norm == "l2":
        return flat.norm(dim=1)
    if norm == "l0":
        changed = delta.abs() > TOLERANCE
        return changed.any(dim=1).flatten(1).sum(dim=1).to(delta.dtype)
    raise ValueError(f"no per-sample norm for {norm!r}")


def check_poison(clean: torch.Tensor, poisoned: torch.Tensor, budget: Budget) -> None:
    """Raise BudgetViolation with a one-line reason unless ``poisoned`` is a valid poison of ``clean``."""
    if not isinstance(poisoned, torch.Tensor):
        raise BudgetViolation(f"poisoner returned {type(poisoned).__name__}, expected a tensor of images")
    if poisoned.shape != clean.shape:
        raise BudgetViolation(
            f"poisoned images have shape {tuple(poisoned.shape)}, expected {tuple(clean.shape)}"
        )
    if poisoned.numel() == 0:
        return  # nothing to check (e.g. an empty split)
    if not torch.isfinite(poisoned).all():
        bad = int((~torch.isfinite(poisoned)).flatten(1).any(1).sum())
        raise BudgetViolation(f"{bad} poisoned images contain NaN or Inf values")
    lo, hi = float(poisoned.min()), float(poisoned.max())
    if lo < -TOLERANCE or hi > 1 + TOLERANCE:
        raise BudgetViolation(f"pixel values span [{lo:.4g}, {hi:.4g}], outside the valid range [0, 1]")
    if budget.norm == "none":
        return
    norms = per_sample_norm(poisoned.to(clean.dtype) - clean, budget.norm)
    worst = float(norms.max()) if len(norms) else 0.0
    slack = TOLERANCE if budget.norm != "l0" else 0.0
    if worst > budget.eps + slack:
        over = int((norms > budget.eps + slack).sum())
        raise BudgetViolation(
            f"{over} of {len(norms)} perturbations exceed the budget {budget.describe()} "
            f"(largest {budget.norm} norm {worst:.4g})"
        )
