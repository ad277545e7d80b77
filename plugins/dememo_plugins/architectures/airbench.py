"""``airbench``: a fast CIFAR network in the spirit of Keller Jordan's airbench (arXiv 2404.00498, "94 % on
CIFAR-10 in 3.29 seconds on a single GPU"), trained by dememo's standard loop.

Architecture (airbench94's, written here from its description):

1. **Patch whitening.** A k×k convolution (k = ``whiten_kernel`` = 2, no padding) with 2·C·k² outputs (24
   for RGB) whose weights are not learned: ``initialize(model, data)`` fits them to the training data. With
   Σ = V diag(λ) Vᵀ the covariance of the k×k patches (all positions, all channels) of the sampled images,
   the filters are the rows of W = diag(λ + ε)^−½ Vᵀ (ε = ``whiten_eps`` = 5e-4) and their negatives, so the
   first C·k² output channels have identity covariance on those patches (up to λ/(λ + ε)) and the GELU that
   follows keeps both signs of every whitened component. The weights are frozen (``requires_grad`` False).
2. **Conv groups.** For each width in ``widths`` (64, 256, 256: airbench's 1×, 4×, 4× a base width of 64):
   3×3 convolution → 2×2 max-pool → BatchNorm → GELU → 3×3 convolution → BatchNorm → GELU. Convolutions have
   no bias and a partial identity initialisation (airbench's): after PyTorch's default draw, the first
   C_in filters are set to the identity (Dirac) kernel, so the second convolution of a group starts as the
   identity. BatchNorm has its scale fixed at 1 (not trained; only the bias is) and running statistics with
   momentum 0.4 (airbench's running-average decay 0.6).
3. **Head.** Global max-pool (airbench's 3×3 max-pool over its final 3×3 map), then a bias-free linear layer
   whose output is scaled by ``output_scale`` = 1/9. The scale multiplies the pooled features *before* the
   linear layer: for a bias-free layer that gives the same outputs and the same gradients for every weight,
   and it keeps the head the model's last ``nn.Linear`` producing the output (``dememo.models``' convention,
   used by DFR, prototype relearning, certified Newton unlearning and EU-k/CF-k).

Inputs are [0, 1] pixels, standardised inside the model as (x − 0.5)/0.25 like dememo's other architectures,
so budgets stay in pixel space; the whitening then removes whatever per-dataset scale remains.

Where dememo generalises or departs from airbench, and why:

- **Centred covariance and a fitted bias.** airbench whitens with the uncentred second moment of images
  normalised by CIFAR-10's per-channel mean and std (so the mean is ≈ 0) and starts the whitening bias at 0.
  dememo normalises the same way for every dataset, so the mean can be far from 0 (MNIST); an uncentred
  moment would make the mean the top "eigen-direction". dememo uses the covariance and sets the bias to
  −Wμ (and +Wμ for the negated filters): the whitened outputs are zero-mean on the fitted patches.
- **Seeded sample.** Up to ``whiten_samples`` = 5,000 training images drawn with a fixed seed (airbench takes
  the first 5,000 of CIFAR-10's training order), so the filters depend on the data only: the same data gives
  the same filters on every run and for every seed; a retrain on the retain set fits its own.
- **Device-independent filters.** Patch moments are accumulated in float64 on the data's device (float32 on
  devices without float64); the d×d eigendecomposition (d = C·k², 12 for RGB) runs in float64 on the CPU
  and each eigenvector's sign is fixed (largest-magnitude entry positive), so the filters do not depend on
  the linear-algebra backend.
- **Whitening bias trained throughout.** airbench trains it for the first 3 epochs and then freezes it; dememo's
  loop has no per-epoch freezing, so it stays trainable.
- **BatchNorm ε = 1e-5** (PyTorch's default) rather than airbench's 1e-12: equal for activations of unit
  scale, and it guards channels that are constant over a batch (small or degenerate datasets).
- **float32 parameters.** airbench casts the network to float16 except BatchNorm; this module never casts
  itself, and its BatchNorm parameters and running statistics stay float32 whatever precision the harness
  computes the convolutions in.
- **Any image size ≥ 8×8 and any channel count.** Each group max-pools only while its input is at least 2×2,
  and the final pooling is global (airbench assumes 32×32 RGB). MNIST (1×28×28) gets 8 whitening channels.
- **Without ``initialize``** (``ctx.new_model()`` called with no data) the whitening layer keeps PyTorch's
  random default initialisation, frozen, and a zero bias: a fixed random patch projection.

Not reproduced (training procedure, not architecture; dememo's standard loop trains every architecture with
the suite's recipe: SGD with Nesterov momentum on the mean loss, weight decay, onecycle/cosine schedule,
label smoothing): airbench's summed loss with "decoupled" hyper-parameters (the ``cifar10-fast`` suite
states the mean-loss equivalents), its 64× learning rate for BatchNorm biases, Lookahead (EMA of weights),
its triangular schedule (dememo's onecycle is close: linear rise, then linear fall to 0 instead of to 0.07),
alternating-flip and translate augmentation, test-time augmentation, whitening-bias freezing,
``torch.compile`` and float16. Its ≈ 94 % on CIFAR-10 depends on several of these and is not verified here.

BatchNorm: ``dememo.ensemble`` (``ctx.train_many``) refuses models with BatchNorm (``check_vectorizable``, run by
``fit_many`` before it picks a backend and by ``Ensemble.stack``), so the many-model metrics (``u-lira``,
``forget-quality``, ``memorization``) do not run on this architecture.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import dememo
from dememo import validate
from dememo_plugins.architectures.small_cnn import Standardize

#: seed of the image sample the whitening is fitted on (fixed: the filters depend on the data only)
WHITEN_SEED = 0
#: images per chunk when accumulating patch moments
CHUNK = 256
#: BatchNorm running-statistics momentum (PyTorch convention: airbench's running-average decay 0.6)
BN_MOMENTUM = 0.4


def conv3x3(cin: int, cout: int, identity: bool) -> nn.Conv2d:
    """A bias-free 3×3 'same' convolution; with ``identity`` its first ``cin`` filters are Dirac kernels."""
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    if identity:
        nn.init.dirac_(conv.weight[:cin])
    return conv


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm whose scale is fixed at 1 (only its bias is trained)."""
    bn = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
    bn.weight.requires_grad_(False)
    return bn


class ConvGroup(nn.Module):
    """conv → max-pool → BN → GELU → conv → BN → GELU (the pool is an identity on maps smaller than 2×2)."""

    def __init__(self, cin: int, cout: int, pool: bool, identity: bool):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, identity)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.norm1 = batch_norm(cout)
        self.conv2 = conv3x3(cout, cout, identity)
        self.norm2 = batch_norm(cout)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """Standardise → frozen patch-whitening conv → GELU → conv groups → global max-pool → scale → linear."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, widths: tuple[int, ...],
                 whiten_kernel: int, output_scale: float, identity: bool):
        super().__init__()
        c, h, w = input_shape
        k = whiten_kernel
        self.standardize = Standardize()
        self.whiten = nn.Conv2d(c, 2 * c * k * k, k, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        self.act = nn.GELU()
        size, cin, groups = min(h, w) - k + 1, 2 * c * k * k, []
        for width in widths:
            pool = size >= 2
            groups.append(ConvGroup(cin, width, pool, identity))
            size, cin = (size // 2 if pool else size), width
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.output_scale = float(output_scale)
        self.head = nn.Linear(cin, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.whiten(self.standardize(x)))
        x = self.pool(self.groups(x)).flatten(1)
        return self.head(x * self.output_scale)


def patch_moments(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d) and covariance (d×d) of all k×k patches of images ``x`` (N×C×H×W), d = C·k², flattened in
    the layout of a convolution weight (channel, row, column); computed on ``x``'s device."""
    dtype = torch.float64 if x.device.type in ("cpu", "cuda") else torch.float32
    d = x.shape[1] * k * k
    s1 = torch.zeros(d, dtype=dtype, device=x.device)
    s2 = torch.zeros(d, d, dtype=dtype, device=x.device)
    count = 0
    for start in range(0, len(x), CHUNK):
        p = F.unfold(x[start : start + CHUNK].to(dtype), k).transpose(1, 2).reshape(-1, d)
        s1 += p.sum(0)
        s2 += p.T @ p
        count += len(p)
    mean = s1 / count
    return mean, s2 / count - torch.outer(mean, mean)


def whitening_filters(mean: torch.Tensor, cov: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (2d×d) and bias (2d) of the whitening layer: W = diag(λ + ε)^−½ Vᵀ (eigenvalues descending,
    each eigenvector's largest-magnitude entry positive) and −W; bias ∓Wμ. Float64, on the CPU."""
    cov = cov.detach().to("cpu", torch.float64)
    mean = mean.detach().to("cpu", torch.float64)
    evals, evecs = torch.linalg.eigh((cov + cov.T) / 2)
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    lead = evecs.abs().argmax(0)
    evecs = evecs * torch.sign(evecs[lead, torch.arange(len(lead))])
    w = evecs.T / torch.sqrt(evals + eps)[:, None]
    b = -(w @ mean)
    return torch.cat([w, -w]), torch.cat([b, -b])


def _positive_ints(value) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.define
class Airbench(dememo.Architecture):
    """airbench-style fast CIFAR net: frozen 2×2 patch-whitening conv, conv–BN–GELU groups 64/256/256, scaled head."""

    name: ClassVar[str] = "airbench"
    version: ClassVar[str] = "1"
    widths: tuple[int, ...] = attrs.field(default=(64, 256, 256), converter=_positive_ints)
    whiten_kernel: int = 2
    whiten_eps: float = 5e-4
    whiten_samples: int = 5000
    output_scale: float = 1 / 9
    identity_init: bool = True

    def __attrs_post_init__(self) -> None:
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must list at least one positive channel count, got {list(self.widths)}")
        validate.at_least(1, whiten_kernel=self.whiten_kernel, whiten_samples=self.whiten_samples)
        validate.positive(about="it bounds the gain on flat patch directions", whiten_eps=self.whiten_eps)
        validate.positive(output_scale=self.output_scale)

    def build(self, input_shape, num_classes):
        c, h, w = input_shape
        if min(h, w) < max(8, self.whiten_kernel):
            raise ValueError(f"airbench needs images of at least 8×8 pixels, got {h}×{w}")
        return AirbenchNet(tuple(input_shape), num_classes, self.widths, self.whiten_kernel, self.output_scale,
                           self.identity_init)

    def initialize(self, model, data):
        """Fit the whitening layer to k×k patches of a seeded sample of up to ``whiten_samples`` images of
        ``data`` (on ``data``'s device); deterministic given ``data``."""
        if not isinstance(model, AirbenchNet):
            raise TypeError(f"airbench.initialize expects a model built by airbench, got {type(model).__name__}")
        if len(data) == 0:
            raise ValueError("airbench needs training images to fit its whitening layer; got empty data")
        layer = model.whiten
        if data.x.shape[1] != layer.in_channels:
            raise ValueError(f"the model takes {layer.in_channels} channels but the data has {data.x.shape[1]}")
        g = torch.Generator().manual_seed(WHITEN_SEED)
        pick = torch.randperm(len(data), generator=g)[: self.whiten_samples].to(data.x.device)
        with torch.no_grad():
            mean, cov = patch_moments(model.standardize(data.x[pick]), layer.kernel_size[0])
            weight, bias = whitening_filters(mean, cov, self.whiten_eps)
            layer.weight.copy_(weight.view_as(layer.weight).to(layer.weight))
            layer.bias.copy_(bias.to(layer.bias))


@dememo.hookimpl
def register_architectures(register):
    register(Airbench)
