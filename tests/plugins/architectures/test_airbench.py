"""The ``airbench`` architecture (plugins/dememo_plugins/architectures/airbench.py): behaviour tests and reference checks.

The paper-scale architectures (``resnet18``, ``airbench``) and the ``cifar10`` / ``cifar10-fast`` suites.

Shapes on CIFAR- and MNIST-sized inputs, the ResNet-18 CIFAR stem and parameter count, determinism, the
airbench whitening layer (identity covariance on the patches it was fitted on, frozen, deterministic,
data-dependent), a few training steps on small 3×16×16 data, and the suites' contents. Measured: about 15 s
on a loaded 2-core CPU (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dememo
from dememo_plugins.architectures.airbench import Airbench, AirbenchNet, patch_moments

from support.architectures import build


def smooth_images(n: int, channels: int = 3, size: int = 16, seed: int = 0, mix: float = 0.8) -> torch.Tensor:
    """Images with strongly correlated neighbouring pixels and channels (upsampled noise, mixed channels)
    plus some pixel noise: their 2×2 patch covariance is far from the identity but well conditioned."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, size // 4, size // 4, generator=g)
    base = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    own = torch.rand(n, channels, size, size, generator=g)
    return (mix * base + (1 - mix) * own).clamp(0, 1)


def data_of(x: torch.Tensor, tag: str) -> dememo.Data:
    return dememo.Data.from_tensors(x, torch.arange(len(x)) % 4, 4, tag=tag)


def test_airbench_structure_and_parameter_count():
    model = build(Airbench(), (3, 32, 32), 10)
    assert isinstance(model, AirbenchNet)
    assert sum(p.numel() for p in model.parameters()) == 1_972_792
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 1_971_352
    w = model.whiten
    assert (w.in_channels, w.out_channels, w.kernel_size, w.padding) == (3, 24, (2, 2), (0, 0))
    assert build(Airbench(), (1, 28, 28), 10).whiten.out_channels == 8
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 6 and all(not bn.weight.requires_grad and bn.bias.requires_grad for bn in bns)
    assert model.head.bias is None
    # partial identity initialisation: the second convolution of a group starts as the identity
    conv2 = model.groups[1].conv2
    x = torch.randn(1, 256, 5, 5)
    assert torch.allclose(conv2(x), x, atol=1e-6)
    with pytest.raises(ValueError, match="widths"):
        Airbench(widths=())
    with pytest.raises(ValueError, match="whiten_eps"):
        Airbench(whiten_eps=0.0)


def whitened(model: AirbenchNet, x: torch.Tensor) -> torch.Tensor:
    """Whitening-layer outputs at every position, one row per patch (before the GELU)."""
    with torch.no_grad():
        out = model.whiten(model.standardize(x))
    return out.permute(0, 2, 3, 1).reshape(-1, out.shape[1]).double()


def test_whitening_gives_identity_covariance_on_its_patches():
    x = smooth_images(64)
    model = build(Airbench(), (3, 16, 16), 10)
    before = whitened(model, x)
    Airbench().initialize(model, data_of(x, "smooth"))
    out = whitened(model, x)
    d = 12
    pos, neg = out[:, :d], out[:, d:]
    assert torch.allclose(neg, -pos, atol=1e-5)
    cov = torch.cov(pos.T)
    assert torch.allclose(cov, torch.eye(d, dtype=cov.dtype), atol=0.01), cov
    assert pos.mean(0).abs().max() < 1e-4  # the fitted bias centres the outputs
    # the data really are correlated: their raw patch covariance is far from a multiple of the identity
    _, raw = patch_moments(model.standardize(x), 2)
    corr = raw / raw.diagonal().sqrt().outer(raw.diagonal().sqrt())
    assert (corr - torch.eye(d, dtype=corr.dtype)).abs().max() > 0.8
    assert not torch.allclose(torch.cov(before[:, :d].T), torch.eye(d, dtype=cov.dtype), atol=0.1)


def test_whitening_one_channel():
    x = smooth_images(32, channels=1, size=28)
    model = build(Airbench(), (1, 28, 28), 10)
    Airbench().initialize(model, data_of(x, "smooth-1ch"))
    cov = torch.cov(whitened(model, x)[:, :4].T)
    assert torch.allclose(cov, torch.eye(4, dtype=cov.dtype), atol=0.01)


def test_whitening_is_deterministic_frozen_and_data_dependent():
    arch = Airbench(widths=(8, 16, 16))
    x1, x2 = smooth_images(48, seed=1), smooth_images(48, seed=2)
    fitted = []
    for seed, x in [(0, x1), (5, x1), (0, x2)]:
        model = build(arch, (3, 16, 16), 4, seed=seed)  # different random inits do not matter
        arch.initialize(model, data_of(x, f"smooth:{x is x1}"))
        fitted.append((model.whiten.weight.clone(), model.whiten.bias.clone()))
    assert torch.equal(fitted[0][0], fitted[1][0]) and torch.equal(fitted[0][1], fitted[1][1])
    assert not torch.allclose(fitted[0][0], fitted[2][0], atol=1e-3)
    # a smaller sample: a seeded subset, so deterministic too, and different from the whole set
    small = Airbench(widths=(8, 16, 16), whiten_samples=16)
    sub = []
    for _ in range(2):
        model = build(small, (3, 16, 16), 4)
        small.initialize(model, data_of(x1, "smooth:True"))
        sub.append(model.whiten.weight.clone())
    assert torch.equal(sub[0], sub[1]) and not torch.allclose(sub[0], fitted[0][0], atol=1e-3)
    model = build(arch, (3, 16, 16), 4)
    assert not model.whiten.weight.requires_grad
    with pytest.raises(ValueError, match="channels"):
        arch.initialize(model, data_of(smooth_images(8, channels=1), "1ch"))
    with pytest.raises(ValueError, match="empty"):
        arch.initialize(model, data_of(x1[:0], "empty"))
