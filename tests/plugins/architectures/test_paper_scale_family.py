"""The paper-scale architectures together (resnet18, airbench): shapes, heads, determinism, training, and the cifar10 / cifar10-fast suites.

The paper-scale architectures (``resnet18``, ``airbench``) and the ``cifar10`` / ``cifar10-fast`` suites.

Shapes on CIFAR- and MNIST-sized inputs, the ResNet-18 CIFAR stem and parameter count, determinism, the
airbench whitening layer (identity covariance on the patches it was fitted on, frozen, deterministic,
data-dependent), a few training steps on small 3×16×16 data, and the suites' contents. Measured: about 15 s
on a loaded 2-core CPU (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dememo
from dememo.context import standard_training
from dememo.ensemble import check_vectorizable
from dememo.models import features, last_linear
from dememo.planning.suite import load_suite
from dememo.testing import isolated_registry, tiny_context, tiny_splits
from dememo.training import Recipe
from dememo_plugins.architectures import airbench as airbench_module
from dememo_plugins.architectures import resnet as resnet_module
from dememo_plugins.architectures.airbench import Airbench
from dememo_plugins.architectures.resnet import ResNet18

from support.architectures import build

SUITES = Path(dememo.__file__).parent / "suites"


ARCHS = [ResNet18, Airbench]


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
