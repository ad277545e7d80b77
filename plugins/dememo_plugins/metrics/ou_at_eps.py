"""``ou-at-eps``: over-unlearning OU@ε (Ha, Park and Yoon, "Unlearning's Blind Spots: Over-Unlearning and
Prototypical Relearning Attack", arXiv 2506.01318), class-level forgetting only.

Unlearning a class should move its samples to what the original model f₀ thinks they are *besides* that
class, and leave the neighbouring region alone. OU@ε measures the collateral damage near the boundary:
with C_f the forgotten classes, p̃(x) the original model's softmax with the classes in C_f zeroed and the
rest renormalised, and f_u the evaluated (unlearned) model,

    OU@ε = mean over x' ∈ A_ε(D_f) of JS(p̃(x') ‖ softmax(f_u(x'))),
    A_ε(D_f) = {x + δ : x ∈ D_f, ‖δ‖∞ ≤ ε, |g_c(x + δ)| ≤ β},  g_c = z_c − z_c',  c' = argmax_{k≠c} z_k,

z the original model's logits, c the sample's label and β the optional boundary buffer (``beta``; None
= no filter, the default). JS(p ‖ q) = ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q)/2, in **nats** (natural
log; 0 ≤ JS ≤ ln 2 ≈ 0.693). Lower is better; 0 means the unlearned model is exactly the masked original
on the perturbed forget samples. No retrained model is needed. Authors' code (read for facts only):
Seung-B/Spotter-Unlearning, ``ov_utils.py`` (``mask_full_target_soft``, ``compute_divergence_adjusted``,
``create_adversarial_loader_pgd_multi``, ``create_adversarial_loader_gaussian``).

Two perturbation variants, both clamped to [0, 1] pixel space:

- ``ou_pgd``: targeted L∞ PGD on the original model toward each sample's nearest wrong class, ε = 0.03,
  step 0.01, 3 steps, uniform random start in the ε-ball (``dememo.pgd``);
- ``ou_gauss``: x + N(0, σ²), σ = 0.01.

Choices where the paper leaves room, and deviations (dememo):

- Nearest wrong class: the arg-max of the original model's logits on the clean sample over the classes
  that are *not* forgotten (the authors' code takes the arg-max over k ≠ label, the same class when one
  class is forgotten; with several forgotten classes dememo targets a retained class, the region whose
  collateral damage OU@ε measures). The filter's c' is the paper's (arg-max over k ≠ c at x').
- Direction of the PGD step: descent on the cross-entropy toward the target (toward the boundary with
  the nearest wrong class, as the paper describes A_ε). The authors' public code steps up that loss,
  i.e. away from the target class; dememo follows the paper, as its ``spotter`` unlearner does.
- p̃ is computed as the softmax of the logits with C_f set to −∞: the same distribution as zeroing and
  renormalising, without the authors' +1e-10 guard, so a model whose output equals p̃ reads exactly 0;
  JS terms with zero probability are 0 (0·log 0 = 0).
- C_f is the set of labels present in the forget set and absent from the retain set (on a class-level
  forget set: the forgotten classes). On any other forget set C_f is empty and the metric reads NaN;
  the harness runs it only on class-level forget sets (``forget_kinds = ("class",)``).
- ``draws`` perturbed copies per forget sample (the authors' default 1), drawn from
  ``ctx.derive("ou-at-eps:<variant>")``, so every model of a seed is scored on the same x'.
- ``ou_*_kept`` (detail) counts the perturbed samples that pass the β filter (all of them when β is None);
  with none kept the value is NaN.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F

import dememo
from dememo import validate
from dememo.models import evaluating
from dememo.pgd import cross_entropy_loss, pgd


def masked_probs(logits: torch.Tensor, forgotten: torch.Tensor) -> torch.Tensor:
    """Softmax of ``logits`` with the ``forgotten`` classes (boolean mask over classes) removed."""
    return F.softmax(logits.masked_fill(forgotten.to(logits.device), float("-inf")), dim=1)


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row Jensen–Shannon divergence in nats (rows are probability vectors; zeros allowed)."""
    p, q = p.double(), q.double()
    m = (p + q) / 2
    kl_p = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(1)
    kl_q = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(1)
    return (0.5 * (kl_p + kl_q)).clamp_min(0)


def logit_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """g_c = z_c − max_{k≠c} z_k for each row (c = the row's label)."""
    own = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    other = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
    return own - other


@attrs.define
class OverUnlearning(dememo.Metric):
    """OU@ε (Ha et al.): JS divergence to the forget-masked original on near-boundary forget samples."""

    name: ClassVar[str] = "ou-at-eps"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    forget_kinds: ClassVar[tuple[str, ...]] = ("class",)
    needs: ClassVar[tuple[str, ...]] = ("original",)
    columns: ClassVar[dict[str, dememo.Column]] = {
        "ou_pgd": dememo.Column(
            "OU@ε PGD", "lower",
            "mean Jensen–Shannon divergence (nats) between the original model's softmax with the forgotten classes "
            "zeroed and renormalised and the evaluated model's softmax, on forget samples moved by targeted L∞ PGD "
            "on the original model toward their nearest retained class (ε 0.03, step 0.01, 3 steps); reference: "
            "the original model, no retrain needed (OU@ε, Ha et al.)", unit="number"),
        "ou_gauss": dememo.Column(
            "OU@ε Gauss", "lower",
            "as ou_pgd, on forget samples with Gaussian noise (std 0.01) instead of PGD", unit="number"),
        "ou_pgd_kept": dememo.Column(
            "OU@ε PGD kept", "info", "perturbed forget samples (PGD variant) inside the logit-margin filter "
            "|z_c − z_c'| ≤ β of the original model (all when β is off)", unit="count", detail=True),
        "ou_gauss_kept": dememo.Column(
            "OU@ε Gauss kept", "info", "perturbed forget samples (Gaussian variant) inside the logit-margin "
            "filter |z_c − z_c'| ≤ β of the original model (all when β is off)", unit="count", detail=True),
    }

    eps: float = 0.03
    step: float = 0.01
    steps: int = 3
    sigma: float = 0.01
    #: boundary buffer of the logit-margin filter; None = no filter
    beta: float | None = None
    draws: int = 1

    def __attrs_post_init__(self):
        validate.in_range(0, 1, about="the PGD L∞ radius, [0, 1] pixel space", eps=self.eps)
        validate.non_negative(about="PGD steps", steps=self.steps)
        if self.steps > 0:
            validate.positive(about="the PGD step size", step=self.step)
        validate.non_negative(about="the Gaussian noise standard deviation", sigma=self.sigma)
        validate.positive(about="the logit-margin buffer", none="the filter off", beta=self.beta)
        validate.at_least(1, about="perturbed copies per forget sample", draws=self.draws)

    @staticmethod
    def forgotten_classes(task) -> torch.Tensor:
        """Boolean mask over classes: present in the forget set, absent from the retain set."""
        k = task.forget.num_classes
        in_forget = torch.zeros(k, dtype=torch.bool, device=task.forget.y.device)
        in_forget[task.forget.y] = True
        in_retain = torch.zeros_like(in_forget)
        in_retain[task.retain.y.to(in_retain.device)] = True
        return in_forget & ~in_retain

    def perturbed(self, variant: str, original, x, y, forgotten, ctx) -> torch.Tensor:
        """The perturbed forget images of one variant (``draws`` per sample, sample-major)."""
        generator = ctx.derive(f"ou-at-eps:{variant}").generator
        xs = x.repeat_interleave(self.draws, 0)
        if variant == "gauss":
            noise = torch.randn(xs.shape, generator=generator, device=generator.device).to(xs.device, xs.dtype)
            return (xs + self.sigma * noise).clamp(0, 1)
        if self.steps == 0 or self.eps == 0:
            return xs
        with torch.no_grad():
            targets = original(xs).masked_fill(forgotten.to(xs.device), float("-inf")).argmax(1)
        delta = pgd(cross_entropy_loss(original), xs, targets, dememo.Budget("linf", self.eps), steps=self.steps,
                    alpha=self.step, direction="min", generator=generator)
        return xs + delta

    def compute(self, ev, ctx):
        out: dict[str, float] = {}
        forgotten = self.forgotten_classes(ev.task) if len(ev.task.forget) else None
        if forgotten is None or not bool(forgotten.any()) or bool(forgotten.all()):
            return {"ou_pgd": math.nan, "ou_gauss": math.nan, "ou_pgd_kept": 0.0, "ou_gauss_kept": 0.0}
        model, original = ev.model, ev.reference("original")
        with evaluating(model, original):
            x, y = ev.task.forget.x, ev.task.forget.y
            for variant in ("pgd", "gauss"):
                xp = self.perturbed(variant, original, x, y, forgotten, ctx)
                with torch.no_grad():
                    z0 = original(xp)
                    p_masked = masked_probs(z0, forgotten)
                    q = F.softmax(model(xp), dim=1)
                keep = torch.ones(len(xp), dtype=torch.bool, device=xp.device)
                if self.beta is not None:
                    keep = logit_margin(z0, y.repeat_interleave(self.draws, 0)).abs() <= self.beta
                kept = int(keep.sum())
                out[f"ou_{variant}"] = float(js_divergence(p_masked[keep], q[keep]).mean()) if kept else math.nan
                out[f"ou_{variant}_kept"] = float(kept)
        return out


@dememo.hookimpl
def register_metrics(register):
    register(OverUnlearning)
