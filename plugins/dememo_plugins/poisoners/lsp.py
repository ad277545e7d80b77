"""``lsp``: Linear-separable Synthetic Perturbations (Yu et al., "Availability Attacks Create Shortcuts",
KDD 2022; called "synthetic noise" in the paper).

Procedure (the paper's synthetic-noise algorithm): build a small synthetic classification problem that
is linearly separable, and add one of its samples to every training image of the matching class.

1. For each class k a cluster centre μ_k ~ N(0, I_d), with d = C·g_h·g_w: one value per channel and per
   cell of a g_h×g_w grid of patches covering the image.
2. Each training image i of class k gets its own draw s_i = μ_k + σ·n_i, n_i ~ N(0, I_d) (sample-wise
   noise from class-wise clusters: the clusters, not the individual noises, carry the class).
3. s_i is upsampled by repeating each value over a patch_size × patch_size patch (nearest neighbour),
   so the grid of patches tiles the image (cropped at the right/bottom edge when the patch size does not
   divide it).
4. δ_i is scaled to the L2 budget, δ_i ← ε·δ_i / ‖δ_i‖₂, and the poisoned image is clip(x + δ_i, 0, 1):
   δ is added first and the sum clipped, so the negative half of δ is kept and ‖x' − x‖₂ ≤ ε.

Choices where the paper leaves room:

- ``patch_size`` defaults to ``None`` = max(1, H // 4): a 4×4 grid of patches, as CIFAR-10's 32×32
  images with the paper's 8×8 patches. So 16×16 images (noisy-shapes) get 4×4 patches and 8×8 images
  (digits) 2×2 patches; an 8×8 patch would make the noise a single colour on small images, which is a
  per-class constant shift rather than a spatial pattern.
- The paper's synthetic data come from a scikit-learn style generator (centres on hypercube vertices);
  dememo draws Gaussian centres, which are in general position, so each cluster can be cut off from the
  others by a hyperplane whenever d ≥ K − 1 (d = 16 on 1×8×8 digits, 48 on noisy-shapes and CIFAR-10),
  and a within-cluster spread ``cluster_std`` = 0.1 relative to the unit-variance centres. As in the
  paper each image gets its own synthetic sample; ``cluster_std = 0`` gives purely class-wise patches.
- Budget: the paper's L2 radius (≈ 1.0–1.3 on CIFAR-10's 3,072 values) is the dataset's ``l2`` budget;
  every δ_i has norm exactly ε before clipping.

Measured on noisy-shapes (small-cnn, 15 epochs, L2 0.5, seeds 0 / 1; ``tests/plugins/poisoners/test_lsp.py``):
clean test accuracy 0.930 / 0.953 after clean training, 0.922 / 0.765 after training on LSP data (four
more training runs: 0.75–0.89). So at this budget LSP lowers accuracy by 0–0.19, inconsistently, and
does not make the data unlearnable: with the default 4×4 grid the patches have the scale of the
dataset's own class templates (a 4×4 random field upsampled), so the shortcut competes with a real
feature of the same shape and similar strength. With ``patch_size=8`` (a 2×2 grid) accuracy falls to
0.594 / 0.565 — reported, not made the default: the default keeps the paper's grid, not its pixel size.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

import dememo
from dememo import validate


@attrs.define
class LinearSeparablePerturbation(dememo.Poisoner):
    """Linear-separable synthetic patches (Yu et al., KDD 2022): class clusters upsampled to patches, L2."""

    name: ClassVar[str] = "lsp"
    version: ClassVar[str] = "1"
    norm: ClassVar[str] = "l2"
    patch_size: int | None = None  # None: max(1, H // 4), a 4×4 grid as 8×8 patches on 32×32 images
    cluster_std: float = 0.1

    def __attrs_post_init__(self):
        validate.at_least(1, none="H // 4", patch_size=self.patch_size)
        validate.non_negative(cluster_std=self.cluster_std)

    def poison(self, data, ctx):
        c, h, w = data.shape
        p = self.patch_size or max(1, h // 4)
        gh, gw = -(-h // p), -(-w // p)  # ceil: the grid covers the image
        g = ctx.generator
        centres = torch.randn(data.num_classes, c, gh, gw, generator=g, device=ctx.device)
        spread = torch.randn(len(data), c, gh, gw, generator=g, device=ctx.device)
        grid = centres[data.y] + self.cluster_std * spread  # sample-wise draws from class-wise clusters
        delta = grid.repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)[:, :, :h, :w]
        delta = ctx.budget.scale_to(delta).to(data.x.dtype)
        return (data.x + delta).clamp(0, 1)  # add, then clip: never clamp δ itself


@dememo.hookimpl
def register_poisoners(register):
    register(LinearSeparablePerturbation)
