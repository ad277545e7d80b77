"""Learner-side attacks UEraser, Orthogonal Projection and DFR do what their papers and docstrings say.

Measured on noisy-shapes (small-cnn, quick recipe, seeds 0/1; numbers in the plugins' docstrings):
DFR on the validation split brings clean test accuracy from 0.31/0.21 to 0.70/0.68 after EM, from
0.19/0.09 to 0.56/0.46 after CUDA (controls: DFR on random-init features 0.40/0.43; training on the
500 holdout images alone 0.72/0.63). Orthogonal projection and UEraser (paper defaults) both fall to
near chance on noisy-shapes, because its class signal is itself linear (a linear probe reaches 1.00 test
accuracy, so projecting out the probe removes the classes) and low-contrast (plasma brightness swamps
it). The published direction of orthogonal projection is therefore checked on a synthetic dataset whose
class signal is *not* linear (stripe orientation) with a class-wise linear shortcut added.
"""

from __future__ import annotations

import copy
import math

import attrs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import dememo
from dememo.budget import Budget
from dememo.context import Context, standard_training
from dememo.data import Splits
from dememo.testing import tiny_context, tiny_splits
from dememo.training import Recipe
from dememo_plugins.architectures.small_cnn import SmallCNN
from dememo_plugins.attacks import ueraser as U
from dememo.models import last_linear
from dememo_plugins.attacks.dfr import DeepFeatureReweighting
from dememo_plugins.attacks.orthogonal_projection import OrthogonalProjection, fit_linear, orthogonal_basis, project_out
from dememo_plugins.datasets.noisy_shapes import NoisyShapes
from dememo_plugins.poisoners.cuda import ConvolutionUnlearnable

PROPERTY = settings(max_examples=20, deadline=None)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- UEraser: augmentations ------------------------------------------------------------------------------

AUGMENTATIONS = [U.plasma_brightness, U.plasma_contrast, U.channel_shuffle, U.trivial_augment, U.ueraser_augment]


@PROPERTY
@given(c=st.sampled_from([1, 3]), h=st.integers(1, 20), w=st.integers(1, 20), n=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_augmentations_keep_shape_and_range_and_are_seeded(c, h, w, n, seed):
    x = torch.rand(n, c, h, w, generator=gen(seed))
    for f in AUGMENTATIONS:
        out = f(x, gen(seed))
        assert out.shape == x.shape and out.dtype == x.dtype, f.__name__
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1, f.__name__
        assert torch.equal(out, f(x, gen(seed))), f"{f.__name__} is not a function of the generator state"


def test_augmentations_change_images_and_draw_per_image_randomness():
    x = torch.full((64, 3, 16, 16), 0.5) + 0.1 * torch.rand(64, 3, 16, 16, generator=gen(0))
    a, b = U.ueraser_augment(x, gen(1)), U.ueraser_augment(x, gen(2))
    assert not torch.equal(a, b)  # another seed, another draw
    same = U.ueraser_augment(x[:1].expand(8, -1, -1, -1).contiguous(), gen(3))
    assert len({tuple(v.flatten()[:20].tolist()) for v in same}) == 8  # equal inputs get different draws


def test_plasma_fields_are_smooth_unnormalised_and_rougher_with_roughness():
    fields = U.plasma((200, 1, 32, 32), torch.tensor([0.1] * 100 + [0.7] * 100), gen(0))
    assert fields.min() >= 0 and fields.max() < 1.5  # kornia's fields are not min–max normalised
    step = (fields[:, :, 1:] - fields[:, :, :-1]).abs().mean((1, 2, 3))
    assert step[:100].mean() < 0.5 * step[100:].mean()  # low roughness: coarse structure dominates
    assert step[100:].mean() < (torch.rand(1, 1, 32, 32)[:, :, 1:] - torch.rand(1, 1, 31, 32)).abs().mean()  # smoother than white noise


def test_channel_shuffle_permutes_channels_per_image():
    x = torch.rand(200, 3, 4, 4, generator=gen(0))
    out = U.channel_shuffle(x, gen(1), p=0.5)
    assert torch.equal(out.sort(1).values, x.sort(1).values)  # the same values at every pixel, reordered
    changed = (out != x).flatten(1).any(1).float().mean()
    assert 0.3 < changed < 0.6  # p = 0.5, of which 1/6 of the permutations are the identity: ≈ 0.42
    assert torch.equal(U.channel_shuffle(x, gen(1), p=0.0), x)


def test_trivial_augment_operations_match_their_definitions():
    x = torch.rand(4, 3, 8, 8, generator=gen(0))
    assert torch.allclose(U.auto_contrast(x).amin((2, 3)), torch.tensor(0.0))
    assert torch.allclose(U.auto_contrast(x).amax((2, 3)), torch.tensor(1.0))
    assert torch.equal(U.solarize(x, torch.ones(4)), x) and torch.allclose(U.solarize(x, torch.zeros(4)), 1 - x)
    assert torch.equal(U.posterize(x, torch.full((4,), 8.0)), torch.floor(x * 255) / 255)
    assert len(U.posterize(x, torch.full((4,), 1.0)).unique()) <= 2
    assert torch.allclose(U.blend(x, torch.zeros_like(x), torch.ones(4)), x)  # factor 1 is the identity
    eq = U.equalize(x)
    assert torch.allclose(eq.amax((2, 3)), torch.tensor(1.0))  # the largest value maps to 1
    identity = torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(4, 2, 3)
    assert torch.allclose(U.affine(x, identity), x, atol=1e-5)
    shift = identity.clone()
    shift[:, 0, 2] = 2.0  # output pixel j reads input pixel j + 2
    assert torch.allclose(U.affine(x, shift)[..., :6], x[..., 2:], atol=1e-5)


# --- UEraser: adversarial selection ---------------------------------------------------------------------


def test_select_hardest_takes_the_per_sample_maximum():
    views = torch.arange(3 * 4, dtype=torch.float32).view(3, 4, 1, 1, 1)  # view k of sample i = 4k + i
    losses = torch.tensor([[0.1, 5.0, 0.3, 0.0], [0.2, 1.0, 0.9, 0.0], [0.3, 2.0, 0.1, 1.0]])
    picked = U.select_hardest(views, losses).flatten()
    assert picked.tolist() == [8.0, 1.0, 6.0, 11.0]  # draws 2, 0, 1, 2
    with pytest.raises(ValueError, match="disagree"):
        U.select_hardest(views, losses[:2])


class MeanScorer(nn.Module):
    """Logits (0, 10·mean pixel): for label 0 the loss grows with the image's brightness."""

    def forward(self, x):
        m = x.flatten(1).mean(1)
        return torch.stack([torch.zeros_like(m), 10 * m], 1)


def test_adversarial_views_are_the_max_loss_draw_of_each_image():
    x = torch.full((6, 1, 2, 2), 0.5)
    y = torch.zeros(6, dtype=torch.int64)

    def brighten(images, g):  # a random brightness offset per image, recorded per draw
        return (images + 0.4 * torch.rand(len(images), 1, 1, 1, generator=g) - 0.2).clamp(0, 1)

    chosen = U.adversarial_views(MeanScorer(), x, y, 5, gen(0), brighten)
    draws = brighten(x.repeat(5, 1, 1, 1), gen(0)).view(5, *x.shape)  # the same five draws, batched
    assert torch.equal(chosen, draws.max(0).values)  # brightest = highest loss for label 0, per image
    assert (chosen.flatten(1).mean(1) > draws[0].flatten(1).mean(1) - 1e-7).all()
    assert torch.equal(U.adversarial_views(MeanScorer(), x, y, 1, gen(0), brighten), brighten(x, gen(0)))


def test_ueraser_trains_on_hardest_views_only_for_the_adversarial_fraction(monkeypatch):
    calls = []
    original = U.adversarial_views

    def spy(model, x, y, repeats, g, augment=U.ueraser_augment):
        calls.append(repeats)
        return original(model, x, y, repeats, g, augment)

    monkeypatch.setattr(U, "adversarial_views", spy)
    splits = tiny_splits()
    ctx = tiny_context(splits, budget=None, recipe=Recipe(epochs=4, batch_size=40))  # 4 epochs × 3 batches
    model, history = U.UEraser(repeats=3, adversarial_fraction=0.25).train(dememo.LearnerData(splits.train, splits.val, splits.test), ctx)
    assert calls == [3] * 3 + [1] * 9
    assert len(history.epochs) == 4 and "eval_acc" in history.epochs[-1]


@pytest.mark.parametrize("params", [{"repeats": 0}, {"adversarial_fraction": 1.5}, {"brightness_intensity": -0.1},
                                    {"shuffle_probability": 2.0}])
def test_ueraser_rejects_bad_parameters(params):
    with pytest.raises(ValueError, match=f"^{next(iter(params))} .*must be"):
        U.UEraser(**params)


# --- Orthogonal projection -------------------------------------------------------------------------------


def stripes(n: int, seed: int, shortcut: float = 0.0, size: int = 8) -> dememo.Data:
    """Four classes told apart by the orientation of period-4 stripes (|, −, /, \\) with random phase:
    every class has the same mean image, so no linear model separates them, while a CNN does. With
    ``shortcut`` > 0, a fixed zero-mean ±``shortcut`` pattern per class is added (a linear shortcut)."""
    g = gen(seed)
    y = torch.arange(n) % 4
    i, j = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    coords = torch.stack([i, j, i + j, i - j]).float()
    phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    x = 0.5 + 0.1 * torch.cos(2 * math.pi * coords[y] / 4 + phase) + 0.1 * torch.randn(n, size, size, generator=g)
    if shortcut:
        pattern = (torch.randint(0, 2, (4, size, size), generator=gen(1234)) * 2 - 1) * shortcut
        x = x + (pattern - pattern.mean((1, 2), keepdim=True))[y]
    return dememo.Data.from_tensors(x.clamp(0, 1)[:, None], y, 4, tag=f"stripes:{n}:{seed}:{shortcut}")


def stripes_context(data: dememo.Data, seed: int = 0) -> Context:
    return tiny_context(Splits(data, data, data), seed, None, SmallCNN(width=8), Recipe(epochs=10, batch_size=64, lr=0.05))


def probe_accuracy(train: dememo.Data, test: dememo.Data) -> float:
    weight = fit_linear(train, stripes_context(train), steps=300)
    return float(((test.x.flatten(1) @ weight.T).argmax(1) == test.y).float().mean())


def test_projection_removes_the_linear_models_directions():
    data = stripes(400, 0, shortcut=0.2)
    op = OrthogonalProjection(linear_steps=300)
    projected, weight = op.projected(data, stripes_context(data))
    assert projected.x.shape == data.x.shape and torch.equal(projected.y, data.y)
    before = (data.x.flatten(1) @ weight.T).abs().mean()
    after = (projected.x.flatten(1) @ weight.T).abs().mean()
    assert after < 1e-5 * before  # W·x ≈ 0 after projection
    basis = orthogonal_basis(weight)
    assert torch.allclose(basis.T @ basis, torch.eye(4), atol=1e-5)
    assert torch.allclose(project_out(projected.x, basis), projected.x, atol=1e-6)  # a projection: idempotent
    assert projected.fingerprint != data.fingerprint


def test_a_linear_probe_on_projected_class_wise_poison_does_much_worse():
    train, test = stripes(400, 0, shortcut=0.2), stripes(400, 5, shortcut=0.2)  # both carry the shortcut
    _, weight = OrthogonalProjection(linear_steps=300).projected(train, stripes_context(train))
    basis = orthogonal_basis(weight)
    plain = probe_accuracy(train, test)
    projected = probe_accuracy(train.with_images(project_out(train.x, basis), "p"), test.with_images(project_out(test.x, basis), "q"))
    assert plain > 0.95 and projected < 0.4  # measured 1.00 and ≈ 0.25 (chance)


def test_orthogonal_projection_recovers_from_a_linear_shortcut_on_nonlinear_classes():
    # the published direction (OPS / LSP on CIFAR-10: > 87 % recovered); measured here (10 epochs, seeds
    # 0 / 1): standard training on the poisoned stripes 0.29 / 0.23, orthogonal projection 0.68 / 0.85,
    # clean training 0.96 / 0.98
    train, test = stripes(600, 0, shortcut=0.2), stripes(400, 1)
    ctx = stripes_context(train)
    poisoned, _ = standard_training(ctx, train)
    model, history = OrthogonalProjection().train(dememo.LearnerData(train, test, test), stripes_context(train))
    assert ctx.accuracy(poisoned, test) < 0.35
    assert ctx.accuracy(model, test) > 0.55
    assert len(history.epochs) == 10


def test_noisy_shapes_classes_are_linear_so_projection_removes_them():
    # why orthogonal projection cannot help on noisy-shapes: a linear probe already separates the clean
    # classes, and its span holds almost all of the class templates' energy (measured 1.00 and 0.98)
    splits = NoisyShapes().load(None, False)
    data = splits.train
    weight = fit_linear(data, stripes_context(data), steps=300)
    assert float(((splits.test.x.flatten(1) @ weight.T).argmax(1) == splits.test.y).float().mean()) > 0.95
    means = torch.stack([data.x[data.y == k].mean(0) for k in range(10)]).flatten(1)
    means = means - means.mean(0)
    kept = (means @ orthogonal_basis(weight)).norm(dim=1).pow(2) / means.norm(dim=1).pow(2)
    assert kept.mean() > 0.9


def test_orthogonal_projection_rejects_bad_parameters():
    with pytest.raises(ValueError, match="^linear_steps must be ≥ 1"):
        OrthogonalProjection(linear_steps=0)
    with pytest.raises(ValueError, match="^linear_lr must be > 0"):
        OrthogonalProjection(linear_lr=0.0)


# --- DFR -------------------------------------------------------------------------------------------------


def test_dfr_changes_only_the_last_layer_of_the_standard_model():
    splits = tiny_splits()
    model, history = DeepFeatureReweighting(epochs=20).train(dememo.LearnerData(splits.train, splits.val, splits.test),
                                                             tiny_context(splits, budget=None))
    standard = tiny_context(splits, budget=None).train(splits.train)
    after, before = model.state_dict(), standard.state_dict()
    last = {k for k in after if k.startswith("net.3.")}  # TinyMLP: net = Flatten, Linear, ReLU, Linear
    assert last == {"net.3.weight", "net.3.bias"}
    assert all(torch.equal(after[k], before[k]) for k in after if k not in last)
    assert all(not torch.equal(after[k], before[k]) for k in last)
    assert len(history.epochs) == 20 and "eval_acc" in history.epochs[-1]


def test_dfr_fits_on_holdout_data_only_and_never_decides_on_the_monitor(monkeypatch):
    seen = []
    original = Context.fit

    def spy(self, model, data, **kw):
        seen.append(data)
        return original(self, model, data, **kw)

    monkeypatch.setattr(Context, "fit", spy)
    splits = tiny_splits()
    dfr = DeepFeatureReweighting(epochs=10, fraction=0.5)
    with_monitor, _ = dfr.train(dememo.LearnerData(splits.train, splits.val, splits.test), tiny_context(splits, budget=None))
    assert [len(d) for d in seen] == [len(splits.train), len(splits.val) // 2]
    assert seen[0] is splits.train  # the standard training sees the (poisoned) training set
    assert set(seen[1].index.tolist()) <= set(splits.val.index.tolist())  # the last layer sees holdout samples only
    assert torch.equal(seen[1].y, splits.val.y[seen[1].index])  # with the holdout's labels (val.index = positions)
    without, history = dfr.train(dememo.LearnerData(splits.train, splits.val, None), tiny_context(splits, budget=None))
    assert all(torch.equal(a, b) for a, b in zip(with_monitor.state_dict().values(), without.state_dict().values()))
    assert "eval_acc" not in history.epochs[-1]


def test_dfr_reinit_false_starts_from_the_trained_layer():
    splits = tiny_splits()
    data = dememo.LearnerData(splits.train, splits.val, None)
    a, _ = DeepFeatureReweighting(epochs=1, lr=1e-9, reinit=False).train(data, tiny_context(splits, budget=None))
    standard = tiny_context(splits, budget=None).train(splits.train)
    assert torch.allclose(a.state_dict()["net.3.weight"], standard.state_dict()["net.3.weight"], atol=1e-6)


def test_dfr_needs_a_last_linear_layer_that_gives_the_output():
    with pytest.raises(ValueError, match="has none"):
        last_linear(nn.Sequential(nn.Conv2d(1, 3, 1), nn.Flatten()))
    splits = tiny_splits()
    data = dememo.LearnerData(splits.train, splits.val, None)
    ctx = tiny_context(splits, budget=None)
    odd = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.Tanh())
    with pytest.raises(ValueError, match="to produce its output"):
        DeepFeatureReweighting().reweight(odd, splits.val, ctx)
    with pytest.raises(ValueError, match="fraction"):
        DeepFeatureReweighting(fraction=0.0)
    assert DeepFeatureReweighting().holdout(data.holdout, ctx) is splits.val


def test_dfr_on_cuda_beats_standard_training_and_matches_a_head_on_random_features():
    # measured with the released CUDA (cuda version 2: one filter for all channels, each image divided by
    # its maximum), 8 epochs, seeds 0/1: standard 0.10/0.13, DFR 0.35/0.43, DFR on random-init features
    # 0.35/0.35; 15 epochs: standard 0.13/0.10, DFR 0.44/0.40. The per-channel, clipped CUDA of version 1
    # gave DFR 0.62 at 8 epochs (seed 0). Against the released CUDA the poisoned model's features add
    # little over random ones (0.00/0.09 here), so only "not worse than random" is asserted.
    splits = NoisyShapes().load(None, False)
    budget = Budget("none", float("inf"))

    def ctx(b=None):
        return tiny_context(splits, 0, b, SmallCNN(), Recipe(epochs=8, batch_size=128, lr=0.05))

    poisoned = splits.train.with_images(ConvolutionUnlearnable().poison(splits.train, ctx(budget)), "cuda")
    standard = ctx().train(poisoned)
    shared = attrs.evolve(ctx(), trainer=lambda data: (copy.deepcopy(standard), None))  # as the runner shares it
    model, _ = DeepFeatureReweighting().train(dememo.LearnerData(poisoned, splits.val, None), shared)
    random_features = ctx().new_model()
    DeepFeatureReweighting().reweight(random_features, splits.val, ctx())
    acc = {name: ctx().accuracy(m, splits.test) for name, m in
           {"standard": standard, "dfr": model, "random": random_features}.items()}
    assert acc["standard"] < 0.3
    assert acc["dfr"] > acc["standard"] + 0.2
    assert acc["dfr"] > acc["random"] - 0.05
