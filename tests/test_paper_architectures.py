"""The paper-scale architectures (``resnet18``, ``airbench``) and the ``cifar10`` / ``cifar10-fast`` suites.

Shapes on CIFAR- and MNIST-sized inputs, the ResNet-18 CIFAR stem and parameter count, determinism, the
airbench whitening layer (identity covariance on the patches it was fitted on, frozen, deterministic,
data-dependent), a few training steps on small 3×16×16 data, and the suites' contents. Measured: about 15 s
on a loaded 2-core CPU (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dememo
from dememo.context import standard_training
from dememo.ensemble import check_vectorizable
from dememo.models import features, last_linear
from dememo.plan.suite import load_suite
from dememo.testing import isolated_registry, tiny_context, tiny_splits
from dememo.training import Recipe
from dememo_plugins.architectures import airbench as airbench_module
from dememo_plugins.architectures import resnet as resnet_module
from dememo_plugins.architectures.airbench import Airbench, AirbenchNet, patch_moments
from dememo_plugins.architectures.resnet import ResNet18

SUITES = Path(dememo.__file__).parent / "suites"
ARCHS = [ResNet18, Airbench]


def build(arch: dememo.Architecture, shape, classes, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return arch.build(shape, classes)


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


# ----------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("arch_cls", ARCHS)
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (1, 8, 8)])
@pytest.mark.parametrize("classes", [10, 100])
def test_output_shape(arch_cls, shape, classes):
    model = build(arch_cls(), shape, classes).eval()
    with torch.no_grad():
        out = model(torch.rand(2, *shape))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch_cls", ARCHS)
def test_too_small_images_are_refused(arch_cls):
    with pytest.raises(ValueError, match="at least 8×8"):
        arch_cls().build((3, 7, 7), 10)


def test_resnet18_cifar_stem_and_parameter_count():
    model = build(ResNet18(), (3, 32, 32), 10)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    net = model[1]
    stem = net.conv1
    assert (stem.in_channels, stem.kernel_size, stem.stride, stem.padding) == (3, (3, 3), (1, 1), (1, 1))
    assert isinstance(net.maxpool, nn.Identity)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert build(ResNet18(), (1, 28, 28), 10)[1].conv1.in_channels == 1
    # the stem keeps the resolution: the first stage sees 32×32 maps
    seen = {}
    net.layer1.register_forward_hook(lambda m, i, o: seen.update(layer1=o.shape))
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, 32, 32))
    assert seen["layer1"][-2:] == (32, 32)


def test_resnet18_normalises_inside_the_model():
    model = build(ResNet18(mean=0.25, std=0.5), (3, 16, 16), 10)
    assert (model[0].mean, model[0].std) == (0.25, 0.5)
    with pytest.raises(ValueError, match="std"):
        ResNet18(std=0.0)


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


@pytest.mark.parametrize("arch_cls", ARCHS)
def test_head_is_the_output_layer(arch_cls):
    """``dememo.models``' convention: the last nn.Linear produces the output (airbench scales before it)."""
    model = build(arch_cls(), (3, 16, 16), 10).eval()
    x = torch.rand(4, 3, 16, 16)
    head = last_linear(model)
    feats = features(model, x)
    with torch.no_grad():
        assert torch.allclose(head(feats), model(x), atol=1e-5)


@pytest.mark.parametrize("arch_cls", ARCHS)
def test_eval_mode_is_deterministic(arch_cls):
    x = torch.rand(4, 3, 16, 16)
    a, b = build(arch_cls(), (3, 16, 16), 10, seed=3).eval(), build(arch_cls(), (3, 16, 16), 10, seed=3).eval()
    stats = [t.clone() for t in a.buffers()]
    with torch.no_grad():
        out = a(x)
        assert torch.equal(out, a(x)) and torch.equal(out, b(x))
    assert all(torch.equal(s, t) for s, t in zip(stats, a.buffers()))  # evaluation leaves BN statistics alone
    other = build(arch_cls(), (3, 16, 16), 10, seed=4).eval()
    with torch.no_grad():
        assert not torch.equal(out, other(x))


@pytest.mark.parametrize("arch_cls", ARCHS)
def test_batchnorm_models_are_refused_by_the_ensemble(arch_cls):
    """Why the suites leave out u-lira, forget-quality and memorization (see their grid comments)."""
    with pytest.raises(ValueError, match="BatchNorm"):
        check_vectorizable(build(arch_cls(), (3, 16, 16), 10))


# --------------------------------------------------------------------------------------------- whitening


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


# ------------------------------------------------------------------------------------------------ training


# airbench's scaled head wants its own large learning rate (the cifar10-fast suite's is 1.5)
@pytest.mark.parametrize("arch, lr", [(ResNet18(), 0.05), (Airbench(widths=(16, 64, 64)), 1.5)], ids=["resnet18", "airbench"])
def test_standard_training_lowers_the_loss(arch, lr):
    splits = tiny_splits(n_train=64, n_val=8, n_test=32, shape=(3, 16, 16), num_classes=4)
    recipe = Recipe(epochs=4, batch_size=32, lr=lr, label_smoothing=0.1)
    ctx = tiny_context(splits, architecture=arch, recipe=recipe)
    model, history = standard_training(ctx, splits.train)
    losses = history.column("loss")
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    # 8 steps on 64 images learn the class prototypes (chance is 0.25; measured 0.94 and 1.0)
    assert ctx.accuracy(model, splits.test) >= 0.75
    if isinstance(arch, Airbench):
        # standard training ran the data-dependent initialisation, and training left the whitening alone
        fresh = build(arch, (3, 16, 16), 4)
        arch.initialize(fresh, splits.train)
        assert torch.allclose(model.whiten.weight, fresh.whiten.weight)
        assert not torch.allclose(model.whiten.bias, fresh.whiten.bias)  # the bias is trained


# -------------------------------------------------------------------------------------------------- suites


@pytest.mark.parametrize("name, arch, batch", [("cifar10", "resnet18", 128), ("cifar10-fast", "airbench", 1024)])
def test_suites_load_and_name_the_architectures(name, arch, batch):
    suite = load_suite(str(SUITES / f"{name}.toml"))
    assert suite.name == name and suite.tuning is None
    assert [(d.name, d.architecture) for d in suite.datasets] == [("cifar10", arch)]
    assert suite.datasets[0].recipe.batch_size == batch
    assert {f.label() for f in suite.forget} >= {"random-10%", "class-0"}
    # the ensemble-trained metrics cannot run on BatchNorm networks: the grid gives them no dataset
    for metric in ("u-lira", "forget-quality", "memorization"):
        assert suite.grid.metric_datasets[metric] == ()
    with isolated_registry(resnet_module, airbench_module) as registry:
        for entry in suite.datasets:
            assert registry.get("architecture", entry.architecture).name == entry.architecture


def test_suite_recipes():
    paper = load_suite(str(SUITES / "cifar10.toml")).datasets[0].recipe
    assert (paper.epochs, paper.lr, paper.momentum, paper.weight_decay, paper.schedule) == (60, 0.1, 0.9, 5e-4, "cosine")
    fast = load_suite(str(SUITES / "cifar10-fast.toml")).datasets[0].recipe
    assert (fast.epochs, fast.label_smoothing, fast.momentum) == (10, 0.2, 0.85)
    assert fast.lr == pytest.approx(11.5 / (1 + 1 / (1 - 0.85)))
    assert fast.weight_decay == pytest.approx(0.0153 / 11.5, rel=1e-3)
