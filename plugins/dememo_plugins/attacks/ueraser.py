"""``ueraser``: adversarial augmentation against unlearnable examples (Qin et al., "Learning the
Unlearnable: Adversarial Augmentations Suppress Unlearnable Example Attacks", arXiv 2303.15127, 2023;
ICCV 2023 AROW workshop).

A learner-side attack: train on the (possibly poisoned) data under strong, random, colour- and
geometry-changing augmentations, and make the augmentation *adversarial* by drawing K of them per image
and training on the one the model currently finds hardest (the paper's objective):

    min_θ  E_(x,y) [ max_{k = 1..K}  L(f_θ(A_k(x)), y) ],      A_k ~ 𝒜 independently,

where the maximum is taken per sample (each image keeps its own worst of its K draws). Reference code:
the authors' repository lafeat/ueraser, file ``ueraser.py`` (the ``UEraser`` kornia pipeline and
``adversarial_augmentation_loss``; training loops in ``LSP/cifar_train.py`` and ``EM/QuickStart.ipynb``).
The augmentation 𝒜 is that pipeline, in its order, with its parameters (kornia's definitions, written
here without depending on kornia; checked in ``tests/plugins/attacks/test_ueraser.py``):

1. **Plasma brightness** (``RandomPlasmaBrightness``), with probability ``plasma_probability`` = 0.5
   per image: x ← clip(x + I·(2P − 1)), I ~ U[``brightness_intensity_min``, ``brightness_intensity``]
   = U[0.5, 1] per image, P a diamond–square plasma field (``plasma``) per image and channel with
   roughness U[0.3, 0.7] per image.
2. **Plasma contrast** (``RandomPlasmaContrast``), probability 0.5 per image, roughness U[0.3, 0.7]:
   x ← clip((x − 0.5)·4P + 0.5) with a fresh field P.
3. **Channel shuffle** (``RandomChannelShuffle``) with probability ``shuffle_probability`` = 0.5: a
   random permutation of the channels per image.
4. **TrivialAugment** (kornia's ``TrivialAugment`` with its default policy, always applied): one
   operation with a uniform random magnitude from auto-contrast, equalize, rotate (30°), posterize
   (0–3 bits kept: kornia draws bits from U[0, 4] and truncates; 0 bits is a black image), solarize
   (threshold U[0, 1]), contrast, brightness and sharpness (factor U[0.1, 1.9]), shear x/y (0.3),
   translate x/y (0.5 of the image size).

The earlier release of the code (and its copy in Tianyue818/Source-of-UEraser, ``UEraser_func.py``)
applied both plasma operations always (p = 1) with roughness U[0.1, 0.7] and intensity U[0, 1]; the
current release (used here) has p = 0.5, roughness U[0.3, 0.7] and intensity U[0.5, 1], and its
comment says stronger settings cost accuracy and convergence. dememo's version 1 followed the earlier
settings and min–max normalised its fields; version 2 follows the current release.

The loss is the suite's cross-entropy; the K draws are scored in one batched forward pass without
gradients, the hardest view of every image is gathered, and the model takes its gradient step on those
views (for models without train-mode randomness this is exactly the gradient of the per-sample maximum).

Deviations from the released code, and choices where it leaves room (all documented, none silent):

- **Plasma seed and grid.** The fields follow kornia's ``diamond_square`` (its 3×3 seed with its
  quirks, the (1 − s)·mean + s·U refinement with s = roughness^level, reflected borders with kornia's 4/3
  border factor, no normalisation: values lie in [0, ~1.3], mean ≈ 0.48), on a *square* grid covering
  max(H, W) and cropped; for non-square images kornia uses a rectangular seed and refines only as many
  times as the shorter side needs, so there the field's coarse structure differs (square images, such
  as CIFAR's and the embedded datasets', are exact).
- **Per-image randomness in TrivialAugment.** kornia picks one TrivialAugment operation per call, i.e.
  one for the whole batch (and, in ``adversarial_augmentation_loss``, for all K·B views at once);
  TrivialAugment (Müller & Hutter, 2021) and this implementation pick one per image. For rotate, shear
  and translate kornia multiplies a magnitude from [0, max] by a random 0 or 1 (half the draws are the
  identity, none is negative); here magnitudes are symmetric, U[−max, max], as in TrivialAugment.
- **Equalize** maps each channel of each image through its normalised cumulative histogram over 256
  levels (the CDF-equalisation definition, not kornia's or PIL's exact integer rounding).
- **Where the maximum is taken.** The released loss forwards all K·B views in train mode and
  back-propagates the mean of the per-sample maxima; here the K views are scored without gradients in
  the model's current mode and the chosen views are forwarded again (the same gradient for models
  without train-mode randomness; batch-norm statistics then come from the B chosen views).
- **No crop/flip base augmentation.** The authors' CIFAR loaders add random crop and horizontal flip;
  dememo's standard training has no augmentation, so the comparison with the ``none`` row isolates the
  UEraser augmentations.
- **Schedule of the adversarial part.** ``adversarial_fraction`` is the fraction of optimiser steps that
  use the max over K; the rest use one draw (K = 1, "UEraser-Lite"). The default 1.0 optimises the
  objective above at every step, as ``LSP/cifar_train.py`` does in its "em" mode; its "standard" mode
  switches to one draw after 50 of 200 epochs (0.25) and the README's example after 60 of 200 (0.3).
  The suites set 0.25.
- **Epochs.** The paper trains 200–300 epochs; dememo keeps the suite recipe's epochs so that the row is
  comparable with standard training. Under a short schedule the strong augmentations also cost clean
  accuracy, so the numbers may understate what a longer run reaches.

Cost: per step, K forward passes without gradient plus one forward–backward pass, plus the
augmentations (batched over the K draws); on a GPU the augmentations are negligible.

Measured with version 2 on *clean* noisy-shapes (small-cnn, quick recipe: 15 epochs, test accuracy,
seeds 0 / 1; standard training 0.92 / 0.96): K = 1 0.45 / 0.57 (version 1: 0.34 / 0.20), K = 5 with
the suites' ``adversarial_fraction = 0.25`` 0.13 / 0.17, K = 5 throughout 0.10 / 0.12. Switching single
parts off (seed 0, K = 5, 0.25) does not rescue it: no plasma 0.16, no channel shuffle 0.18, TrivialAugment
posterize at 4–8 bits 0.13. So the released probabilities help the single-draw variant, but the per-sample
maximum over 5 draws still removes noisy-shapes' low-contrast colour classes (they are not invariant to
these augmentations, as natural-image classes are). The poisoned rows (EM, OPS, LSP, CUDA, digits)
measured with version 1 no longer apply and are pending the quick-suite re-run.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import dememo
from dememo import validate

from ._learner import train_standard

# -- random draws ---------------------------------------------------------------------------------------

PLASMA_ROUGHNESS = (0.3, 0.7)
"""The roughness range of both plasma operations in the authors' released pipeline."""


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, device=g.device)


def _seed(corners: torch.Tensor) -> torch.Tensor:
    """kornia's 3×3 seed from four U[0, 1] draws (N×C×2×2, placed transposed at the corners, as kornia
    builds a square seed transposed), kept with its quirks: every entry is divided by 3 at the end, so
    corners are U/3 and the centre mean(corners)/3, and each edge midpoint is the mean of three undivided
    values, its two corners and the centre, except the bottom midpoint, which takes the bottom-right and
    the *top*-right corner (the released code's indexing)."""
    tl, tr, bl, br = corners[:, :, 0, 0], corners[:, :, 1, 0], corners[:, :, 0, 1], corners[:, :, 1, 1]
    m = (tl + tr + bl + br) / 4
    rows = [torch.stack([tl, tl + m + tr, tr], -1), torch.stack([tl + bl + m, m, tr + br + m], -1),
            torch.stack([bl, br + m + tr, br], -1)]
    return torch.stack(rows, -2) / 3


def plasma(shape: tuple[int, int, int, int], roughness: torch.Tensor, g: torch.Generator, uniform=None) -> torch.Tensor:
    """Diamond–square plasma fields, one per image and channel (N×C×H×W); ``roughness`` is per image (N).

    kornia's definition (``kornia.contrib.diamond_square`` with the defaults the plasma augmentations use):
    the 3×3 seed of ``_seed`` is refined to side 2^k + 1 ≥ max(H, W); at level l = 1..k the scale is
    s = roughness^l, old points are kept, each diamond centre becomes (1 − s)·(mean of its 4 diagonal
    neighbours) + s·U, then each edge point (1 − s)·q + s·U, where q is the mean of its 4 axis
    neighbours, the grid reflected at the border (the missing neighbour is the opposite one) and a
    border point's q multiplied by 4/3 as kornia does. U ~ U[0, 1], one draw per grid point and level.
    The field is cropped to H×W and **not** normalised. ``uniform(shape)`` supplies the U[0, 1] draws
    (default: from ``g``), so a test can replay them."""
    n, c, h, w = shape
    if uniform is None:
        def uniform(size):
            return torch.rand(size, generator=g, device=g.device)
    levels = math.ceil(math.log2(max(h, w, 3) - 1)) - 1
    r = roughness.view(n, 1, 1, 1).float()
    field = _seed(uniform((n, c, 2, 2)))
    for level in range(1, levels + 1):
        s = r**level
        side = 2 * field.shape[-1] - 1
        noise = uniform((n, c, side, side))
        grid = torch.zeros(n, c, side, side, device=field.device)
        grid[:, :, ::2, ::2] = field
        corners = (field[:, :, :-1, :-1] + field[:, :, :-1, 1:] + field[:, :, 1:, :-1] + field[:, :, 1:, 1:]) / 4
        grid[:, :, 1::2, 1::2] = (1 - s) * corners + s * noise[:, :, 1::2, 1::2]
        padded = F.pad(grid, (1, 1, 1, 1), mode="reflect")
        q = (padded[:, :, :-2, 1:-1] + padded[:, :, 2:, 1:-1] + padded[:, :, 1:-1, :-2] + padded[:, :, 1:-1, 2:]) / 4
        border = torch.ones(side, side, device=field.device)
        border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = 4 / 3
        idx = torch.arange(side, device=field.device)
        edge = (idx[:, None] + idx[None, :]) % 2 == 1  # mixed parity: the square step's points
        grid = torch.where(edge, (1 - s) * q * border + s * noise, grid)
        field = grid
    return field[:, :, :h, :w].contiguous()


def _applied(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    """Which of ``n`` images an operation with probability ``p`` transforms (one Bernoulli(p) per image)."""
    return (torch.rand(n, generator=g, device=g.device) < p).view(n, 1, 1, 1)


def plasma_brightness(x: torch.Tensor, g: torch.Generator, roughness=PLASMA_ROUGHNESS, intensity=(0.5, 1.0),
                      p: float = 0.5) -> torch.Tensor:
    """kornia's ``RandomPlasmaBrightness``: with probability ``p`` per image, x + I·(2P − 1) clipped to
    [0, 1], I ~ U[``intensity``], P a plasma field of roughness U[``roughness``] per image."""
    n = len(x)
    field = plasma(tuple(x.shape), _uniform(n, *roughness, g), g)
    amount = _uniform(n, *intensity, g).view(n, 1, 1, 1)
    return torch.where(_applied(n, p, g), (x + amount * (2 * field - 1)).clamp(0, 1), x)


def plasma_contrast(x: torch.Tensor, g: torch.Generator, roughness=PLASMA_ROUGHNESS, p: float = 0.5) -> torch.Tensor:
    """kornia's ``RandomPlasmaContrast``: with probability ``p`` per image, (x − 0.5)·4P + 0.5 clipped."""
    n = len(x)
    field = plasma(tuple(x.shape), _uniform(n, *roughness, g), g)
    return torch.where(_applied(n, p, g), ((x - 0.5) * 4 * field + 0.5).clamp(0, 1), x)


def channel_shuffle(x: torch.Tensor, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """With probability ``p`` per image, a uniformly random permutation of its channels."""
    n, c = x.shape[:2]
    perm = torch.rand(n, c, generator=g, device=g.device).argsort(1)
    keep = torch.rand(n, generator=g, device=g.device) >= p
    perm = torch.where(keep[:, None], torch.arange(c, device=x.device).expand(n, c), perm)
    return x.gather(1, perm.view(n, c, 1, 1).expand_as(x))


# -- TrivialAugment, one operation per image ------------------------------------------------------------


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 3:
        return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    return x.mean(1, keepdim=True)


def auto_contrast(x: torch.Tensor) -> torch.Tensor:
    lo = x.amin((2, 3), keepdim=True)
    hi = x.amax((2, 3), keepdim=True)
    flat = hi - lo <= 1e-12
    return torch.where(flat, x, (x - lo) / (hi - lo).clamp_min(1e-12))


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Per image and channel: values mapped through the normalised cumulative histogram (256 levels)."""
    n, c, h, w = x.shape
    q = (x * 255).round().long().clamp(0, 255).flatten(2)  # N×C×HW
    hist = torch.zeros(n, c, 256, device=x.device).scatter_add_(2, q, torch.ones_like(q, dtype=torch.float32))
    cdf = hist.cumsum(2)
    first = torch.where(hist > 0, cdf, torch.full_like(cdf, float(h * w))).amin(2, keepdim=True)  # cdf at lowest level
    denom = h * w - first
    lut = torch.where(denom > 0, (cdf - first) / denom.clamp_min(1), torch.arange(256, device=x.device) / 255.0)
    return lut.gather(2, q).view(n, c, h, w).to(x.dtype)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    step = (2.0 ** (8 - bits)).view(-1, 1, 1, 1)
    return torch.floor(torch.floor(x * 255) / step) * step / 255


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return torch.where(x < threshold.view(-1, 1, 1, 1), x, 1 - x)


def blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: b + factor·(a − b), clipped (factor 1 is the identity)."""
    return (b + factor.view(-1, 1, 1, 1) * (a - b)).clamp(0, 1)


def smooth(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter (centre weight 5, neighbours 1, /13) inside; border pixels unchanged."""
    c = x.shape[1]
    kernel = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    kernel[1, 1] = 5
    kernel = (kernel / 13).expand(c, 1, 3, 3)
    out = x.clone()
    if x.shape[2] > 2 and x.shape[3] > 2:
        out[:, :, 1:-1, 1:-1] = F.conv2d(x, kernel, groups=c)
    return out


GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
COLOUR = ("auto_contrast", "equalize", "posterize", "solarize", "contrast", "brightness", "sharpness")
OPERATIONS = COLOUR + GEOMETRIC
"""The TrivialAugment candidates (kornia's default policy without its commented-out identity)."""


def affine(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Warp every image by its own 2×3 pixel-space map from output to input coordinates (about the
    centre), bilinear, zero fill. Pixel space is converted to ``affine_grid``'s normalised space, so
    rotations and shears keep their angles on non-square images."""
    n, _, h, w = x.shape
    scale = torch.tensor([w / 2, h / 2], device=x.device, dtype=x.dtype)
    theta = matrix.clone()
    theta[:, :, :2] = matrix[:, :, :2] * scale[None, None, :] / scale[None, :, None]
    theta[:, :, 2] = matrix[:, :, 2] / scale[None, :]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _colour_op(kind: int, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Colour operation ``COLOUR[kind]`` on images ``x`` with magnitudes ``u`` ∈ [0, 1] (one per image)."""
    name = COLOUR[kind]
    factor = 0.1 + 1.8 * u
    if name == "auto_contrast":
        return auto_contrast(x)
    if name == "equalize":
        return equalize(x)
    if name == "posterize":
        return posterize(x, torch.floor(4 * u).clamp(max=3))  # kornia: 0..3 bits kept (0 is a black image)
    if name == "solarize":
        return solarize(x, u)
    if name == "contrast":
        return blend(x, _grey(x).mean((1, 2, 3), keepdim=True).expand_as(x), factor)
    if name == "brightness":
        return blend(x, torch.zeros_like(x), factor)
    return blend(x, smooth(x), factor)  # sharpness


def _geometry(kind: torch.Tensor, u: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel-space output→input maps (N×2×3) for geometric operations ``GEOMETRIC[kind]``."""
    n = len(kind)
    s = 2 * u - 1  # symmetric magnitudes in [−1, 1]
    angle = torch.deg2rad(30 * s) * (kind == 0)
    shear_x = 0.3 * s * (kind == 1)
    shear_y = 0.3 * s * (kind == 2)
    matrix = torch.zeros(n, 2, 3, device=u.device)
    matrix[:, 0, 0] = torch.cos(angle)
    matrix[:, 0, 1] = -torch.sin(angle) + shear_x
    matrix[:, 1, 0] = torch.sin(angle) + shear_y
    matrix[:, 1, 1] = torch.cos(angle)
    matrix[:, 0, 2] = 0.5 * w * s * (kind == 3)
    matrix[:, 1, 2] = 0.5 * h * s * (kind == 4)
    return matrix


def trivial_augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """TrivialAugment: one operation per image, chosen uniformly from ``OPERATIONS``, with a uniform
    random magnitude from its range. Images are grouped by their operation (one batched call each)."""
    n, _, h, w = x.shape
    op = torch.randint(0, len(OPERATIONS), (n,), generator=g, device=g.device)
    u = torch.rand(n, generator=g, device=g.device)  # the magnitude, mapped into each operation's range
    out = torch.empty_like(x)
    for kind in range(len(COLOUR)):  # a loop over operations, not samples
        idx = (op == kind).nonzero().flatten()
        if len(idx):
            out[idx] = _colour_op(kind, x[idx], u[idx]).to(x.dtype)
    idx = (op >= len(COLOUR)).nonzero().flatten()
    if len(idx):
        out[idx] = affine(x[idx], _geometry(op[idx] - len(COLOUR), u[idx], h, w).to(x.dtype))
    return out.clamp(0, 1)


def ueraser_augment(x: torch.Tensor, g: torch.Generator, intensity=(0.5, 1.0), shuffle: float = 0.5,
                    plasma_p: float = 0.5) -> torch.Tensor:
    """One draw of the UEraser augmentation for every image of ``x`` (N×C×H×W in [0, 1]), in the released
    order: plasma brightness (intensity U[``intensity``]) and plasma contrast, each with probability
    ``plasma_p`` per image, channel shuffle with probability ``shuffle``, TrivialAugment."""
    x = plasma_brightness(x.float(), g, intensity=tuple(intensity), p=plasma_p)
    x = plasma_contrast(x, g, p=plasma_p)
    x = channel_shuffle(x, g, p=shuffle)
    return trivial_augment(x, g)


# -- adversarial augmentation -----------------------------------------------------------------------------


def select_hardest(views: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """Per sample, the view with the largest loss: ``views`` K×N×…, ``losses`` K×N → N×…."""
    if views.shape[:2] != losses.shape:
        raise ValueError(f"views {tuple(views.shape)} and losses {tuple(losses.shape)} disagree on K×N")
    pick = losses.argmax(0)
    return views[pick, torch.arange(views.shape[1], device=views.device)]


def adversarial_views(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int, g: torch.Generator,
                      augment=ueraser_augment) -> torch.Tensor:
    """Draw ``repeats`` augmentations of every image and return, per image, the one with the largest
    cross-entropy under ``model`` (scored without gradients, in the model's current mode)."""
    if repeats == 1:
        return augment(x, g)
    views = augment(x.repeat(repeats, 1, 1, 1), g).view(repeats, *x.shape)  # K×N×C×H×W, one batched draw
    with torch.no_grad():
        logits = model(views.flatten(0, 1))
        losses = F.cross_entropy(logits.float(), y.repeat(repeats), reduction="none").view(repeats, len(x))
    return select_hardest(views, losses)


@attrs.define
class UEraser(dememo.Attack):
    """UEraser (Qin et al., 2023): train on the per-sample hardest of K strong random augmentations."""

    name: ClassVar[str] = "ueraser"
    version: ClassVar[str] = "2"
    stages: ClassVar[tuple[str, ...]] = ("train",)
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability",)
    repeats: int = 5
    adversarial_fraction: float = 1.0
    brightness_intensity: float = 1.0
    brightness_intensity_min: float = 0.5
    plasma_probability: float = 0.5
    shuffle_probability: float = 0.5

    def __attrs_post_init__(self):
        validate.at_least(1, about="K augmentation draws per image", repeats=self.repeats)
        validate.in_range(0, 1, adversarial_fraction=self.adversarial_fraction,
                          brightness_intensity=self.brightness_intensity)
        validate.in_range(0, self.brightness_intensity, about="at most brightness_intensity",
                          brightness_intensity_min=self.brightness_intensity_min)
        validate.in_range(0, 1, plasma_probability=self.plasma_probability,
                          shuffle_probability=self.shuffle_probability)

    def augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """One draw of this configuration's augmentation for every image of ``x``."""
        return ueraser_augment(x, g, (self.brightness_intensity_min, self.brightness_intensity),
                               self.shuffle_probability, self.plasma_probability)

    def train(self, data, ctx):
        g = ctx.derive("ueraser:augment").generator
        recipe = ctx.recipe
        total = recipe.epochs * math.ceil(len(data.train) / recipe.batch_size)
        adversarial_steps = round(self.adversarial_fraction * total)
        state = {"step": 0}
        smoothing = recipe.label_smoothing

        def loss(model, x, y):
            k = self.repeats if state["step"] < adversarial_steps else 1
            state["step"] += 1
            views = adversarial_views(model, x, y, k, g, self.augment)
            return F.cross_entropy(model(views), y, label_smoothing=smoothing)

        return train_standard(data.train, ctx, monitor=data.monitor, loss=loss, desc="ueraser")


@dememo.hookimpl
def register_attacks(register):
    register(UEraser)
