"""``spotter`` (Ha, Park and Yoon, "Unlearning's Blind Spots: Over-Unlearning and Prototypical Relearning
Attack", arXiv 2506.01318): class-level unlearning from the forget data alone.

Let f₀ be the original model, C_f the forgotten classes and p̃(x) the *masked* original distribution:
f₀'s softmax with the classes in C_f zeroed and the rest renormalised (computed here as the softmax of
f₀'s logits with C_f set to −∞, the same distribution without the 0/0 of an over-confident teacher).
Spotter minimises over the forget set D_f, for the unlearned model f_θ with penultimate features h_θ:

    L = λ₁ · KL(p̃(x) ‖ f_θ(x)) + (1 − λ₁) · KL(p̃(x̃) ‖ f_θ(x̃)) + λ₂ · L_disp

- the first term moves the forget samples' predictions to what the original model thinks they are
  *besides* their class (a knowledge-distillation penalty that keeps the neighbourhood intact);
- x̃ are perturbed copies of the forget samples near the boundary: targeted L∞ PGD on f₀ toward each
  sample's nearest wrong class (the arg-max of f₀'s logits over the classes other than its label),
  ε = 0.03, step 0.01, 3 steps, uniform random start, computed once before training; the second term
  keeps f_θ equal to the masked original there, which is what suppresses over-unlearning (OU@ε);
- L_disp is the mean cosine similarity of h_θ over all pairs of distinct samples with the same label in
  the batch (intra-class dispersion): it scatters the forget classes' embeddings, so that a prototype
  built from a few forget samples (the prototypical relearning attack) no longer recovers the class.

Published (CIFAR-10 ResNet-18, one class): λ₁ = 0.7, λ₂ = 1, SGD lr 1e-4, momentum 0.9, weight decay
5e-4, constant lr, batch 128, 10 epochs, BatchNorm layers kept in evaluation mode (running statistics
frozen; their affine parameters still train). The retain set is never read: the method is defined on
D_f alone, and ``unlearn`` does not touch ``task.retain`` (the tests pass a task whose retain set raises
on any access).

Choices and deviations (dememo):

- The public code *ascends* the cross-entropy toward the target class when building x̃ (moving away from
  the nearest wrong class), while the paper describes the perturbed set as the region toward the nearest
  wrong class (also the definition of OU@ε); dememo follows the paper: descent on CE toward the target.
- x̃ batches are drawn independently of the clean batches (the public code zips a shuffled and an
  unshuffled loader, so they are not aligned either); each term uses its own teacher target.
- The features h_θ are the inputs of the head (``dememo.models.last_linear``), captured with a hook in
  the same forward pass as the logits.
- lr 1e-4 moves nothing on the embedded data (100–150 forget images: 1–2 steps per epoch, against ≈ 40
  on CIFAR-10). The default lr 1e-3 (10 epochs, as published) was chosen by measurement on digits and
  noisy-shapes class forgetting (forget accuracy ≤ 0.02, other-class test accuracy 0.96 / 0.86 against
  retrain's 0.97 / 0.87, avg gap 0.006 / 0.018 over 3 seeds); ``search_space`` spans the CIFAR scale too.
  With ε = 0.03 the 3 PGD steps reach the target class for 99 % of noisy-shapes' forget samples and
  for none of digits' (the MLP's margins are wider): x̃ are then near copies, not boundary points. λ₁ and λ₂ stay at the paper's values and out of the search:
  they target over-unlearning near the boundary and the prototypical relearning attack, which the
  validation gap that tuning minimises does not measure (measured: λ₂ from 0 to 1 changes forget and
  other-class accuracy by < 0.015; λ₂ = 10 lowers the forget features' mean same-class cosine similarity
  on noisy-shapes from 0.92 to 0.81 with unchanged accuracies).
- Class-level only (``forget_kinds = ("class",)``): C_f is the set of labels in the forget set, which on
  a random forget set would be every class (refused with a clear error).
"""

from __future__ import annotations

import copy
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import dememo
from dememo import validate
from dememo import models
from dememo.hashing import digest
from dememo.pgd import cross_entropy_loss, pgd_dataset


def masked_log_target(logits: torch.Tensor, forgotten: torch.Tensor) -> torch.Tensor:
    """log p̃: log-softmax of ``logits`` with the ``forgotten`` classes (boolean mask over classes) removed
    (their log-probability is −∞, i.e. probability exactly 0)."""
    return F.log_softmax(logits.masked_fill(forgotten.to(logits.device), float("-inf")), dim=1)


def masked_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, forgotten: torch.Tensor) -> torch.Tensor:
    """KL(p̃ ‖ softmax(student)), averaged over the batch (0·log 0 terms are 0)."""
    log_t = masked_log_target(teacher_logits, forgotten)
    t = log_t.exp()
    log_s = F.log_softmax(student_logits, dim=1)
    return (t * (log_t.masked_fill(t == 0, 0.0) - log_s)).sum(1).mean()


def dispersion(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over pairs of distinct samples with the same label (0 if there are none)."""
    z = F.normalize(features.flatten(1), dim=1)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    same.fill_diagonal_(False)
    pairs = same.sum()
    if int(pairs) == 0:
        return features.sum() * 0.0
    return (z @ z.T)[same].sum() / pairs


def nearest_wrong_targets(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The arg-max class other than each sample's label."""
    banned = F.one_hot(labels, logits.shape[1]).bool()
    return logits.masked_fill(banned, float("-inf")).argmax(1)


@attrs.define
class Spotter(dememo.Unlearner):
    """Spotter (Ha et al., 2025): masked-teacher KL on forget and near-boundary copies, feature dispersion."""

    name: ClassVar[str] = "spotter"
    version: ClassVar[str] = "1"
    forget_kinds: ClassVar[tuple[str, ...]] = ("class",)
    search_space: ClassVar[dict[str, tuple]] = {"lr": (1e-4, 1e-3, 1e-2), "epochs": (2, 10, 30)}
    lr: float = 1e-3
    epochs: int = 10
    kd_weight: float = 0.7
    dispersion_weight: float = 1.0
    eps: float = 0.03
    pgd_step: float = 0.01
    pgd_steps: int = 3
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def __attrs_post_init__(self):
        validate.fit_schedule(self.lr, self.epochs)
        validate.in_range(0, 1, about="λ₁, the clean share of the two KL terms", kd_weight=self.kd_weight)
        validate.non_negative(about="λ₂", dispersion_weight=self.dispersion_weight)
        validate.in_range(0, 1, about="the PGD L∞ radius in [0, 1] pixel space", eps=self.eps)
        validate.non_negative(pgd_steps=self.pgd_steps)
        if self.pgd_steps > 0:
            validate.positive(about="the PGD step size, used as pgd_steps > 0", pgd_step=self.pgd_step)
        validate.in_range(0, 1, high_open=True, momentum=self.momentum)
        validate.non_negative(weight_decay=self.weight_decay)

    def unlearn(self, model, task, ctx):
        # Spotter reads the forget set only: task.retain is never accessed here.
        forget = task.forget
        if len(forget) == 0:
            return model
        forgotten = torch.zeros(forget.num_classes, dtype=torch.bool, device=forget.y.device)
        forgotten[forget.y] = True
        if bool(forgotten.all()):
            raise ValueError("spotter is a class-level method: the forget set holds every class, so no class would "
                             "remain to move its samples to (use it with forget kind 'class')")
        teacher = copy.deepcopy(model).eval()
        teacher.requires_grad_(False)
        head = models.last_linear(model)
        models.features(model, forget.x[:2], head)  # refuses a model whose head is not its output layer
        perturbed = self._near_boundary(teacher, forget, ctx)

        captured: dict[str, torch.Tensor] = {}

        def capture(module, inputs, output):
            captured["h"] = inputs[0]

        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        a, lam = self.kd_weight, self.dispersion_weight

        def loss(m, x, y, px, py):
            for bn in norms:  # BatchNorm frozen: running statistics are not updated
                bn.eval()
            with torch.no_grad():
                t, pt = teacher(x), teacher(px)
            logits = m(x)
            h = captured.pop("h")
            value = a * masked_kl(logits, t, forgotten) + (1 - a) * masked_kl(m(px), pt, forgotten)
            captured.clear()
            if lam:
                value = value + lam * dispersion(h, y)
            return value

        handle = head.register_forward_hook(capture)
        try:
            ctx.fit(model, forget, loss=loss, paired=perturbed, epochs=self.epochs, lr=self.lr, schedule="constant",
                    momentum=self.momentum, weight_decay=self.weight_decay, desc="spotter")
        finally:
            handle.remove()
        return model

    def _near_boundary(self, teacher: nn.Module, forget: dememo.Data, ctx) -> dememo.Data:
        """Forget samples moved toward their nearest wrong class of the original model (targeted PGD)."""
        if self.pgd_steps == 0 or self.eps == 0:
            return forget
        targets = nearest_wrong_targets(ctx.predict(teacher, forget.x), forget.y)
        delta = pgd_dataset(cross_entropy_loss(teacher), forget.x, targets, dememo.Budget("linf", self.eps),
                            steps=self.pgd_steps, alpha=self.pgd_step, direction="min", generator=ctx.generator)
        tag = digest([forget.fingerprint, "spotter-pgd", self.eps, self.pgd_step, self.pgd_steps])
        return forget.with_images(forget.x + delta, tag)


@dememo.hookimpl
def register_unlearners(register):
    register(Spotter)
