"""The ``ueraser`` attack (plugins/dememo_plugins/attacks/ueraser.py): behaviour tests and reference checks.

Reference checks of the learner-side attacks (issue 17): UEraser, bit-depth, grayscale, JPEG, adversarial
training, orthogonal projection, DFR and early stopping.

- UEraser: the authors' pipeline in lafeat/ueraser, ``ueraser.py`` (kornia ``RandomPlasmaBrightness``
  roughness U[0.3, 0.7], intensity U[0.5, 1], p = 0.5; ``RandomPlasmaContrast`` roughness U[0.3, 0.7],
  p = 0.5; ``RandomChannelShuffle`` p = 0.5; ``TrivialAugment``), with kornia's definitions in
  kornia/kornia, ``kornia/augmentation/_2d/intensity/plasma.py``, ``kornia/contrib/diamond_square.py``
  and ``kornia/enhance/adjust.py`` (posterize).

Learner-side attacks UEraser, Orthogonal Projection and DFR do what their papers and docstrings say.

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

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import dememo
from dememo.testing import tiny_context, tiny_splits
from dememo.training import Recipe
from dememo_plugins.attacks import ueraser as U

from support.attacks.learner import gen


def kornia_seed(d: np.ndarray) -> np.ndarray:
    """kornia's ``_diamond_square_seed`` for a 3×3 seed, one image and channel, from its corner draws
    ``d`` (2×2): the corners are written at R[::2, ::2], the centre is their mean, the edge midpoints are
    sums of three values as the released code indexes them, everything is divided by 3, and (because
    the seed is square, height == 3) the result is transposed."""
    r = np.zeros((3, 3))
    r[0, 0], r[0, 2], r[2, 0], r[2, 2] = d[0, 0], d[0, 1], d[1, 0], d[1, 1]
    r[1, 1] = (r[0, 0] + r[2, 0] + r[0, 2] + r[2, 2]) / 4
    r[1, 0] = r[0, 0] + r[1, 1] + r[2, 0]
    r[1, 2] = r[2, 2] + r[1, 1] + r[2, 0]
    r[0, 1] = r[0, 0] + r[0, 2] + r[1, 1]
    r[2, 1] = r[2, 0] + r[2, 2] + r[1, 1]
    return (r / 3).T


def kornia_refine(img: np.ndarray, scale: float, noise: np.ndarray) -> np.ndarray:
    """kornia's ``_one_diamond_one_square`` for one image: ``noise`` is the level's U[0, 1] draw
    (new side × new side). Diamond step: a point whose 3×3 diagonal corners hold values gets
    (1 − s)·0.25·Σ corners + s·u. Square step: a point whose axis neighbours hold values gets
    (1 − s)·0.25·Σ neighbours·(4/3 on the border) + s·u, with 'reflect' padding (index −1 reads 1)."""
    n = 2 * (img.shape[0] - 1) + 1
    new = np.zeros((n, n))
    new[::2, ::2] = img

    def at(a, i, j):  # reflect padding as filter2d's default border
        i = -i if i < 0 else (2 * (n - 1) - i if i > n - 1 else i)
        j = -j if j < 0 else (2 * (n - 1) - j if j > n - 1 else j)
        return a[i, j]

    out = new.copy()
    for i in range(n):
        for j in range(n):
            region = 0.25 * sum(at(new, i + di, j + dj) for di in (-1, 1) for dj in (-1, 1))
            if region > 0:
                out[i, j] = new[i, j] + (1 - scale) * region + scale * noise[i, j]
    new = out
    out = new.copy()
    for i in range(n):
        for j in range(n):
            region = 0.25 * (at(new, i - 1, j) + at(new, i + 1, j) + at(new, i, j - 1) + at(new, i, j + 1))
            if i in (0, n - 1) or j in (0, n - 1):
                region *= 1 / 0.75
            if region > 0:
                out[i, j] = new[i, j] + scale * noise[i, j] + (1 - scale) * region
    return out


@pytest.mark.reference("attack", "ueraser", source="kornia/kornia:kornia/contrib/diamond_square.py")
@settings(max_examples=8, deadline=None)
@given(h=st.integers(1, 17), w=st.integers(1, 17), rough=st.floats(0.3, 0.7), seed=st.integers(0, 2**16))
def test_plasma_field_is_kornias_diamond_square_with_the_same_draws(h, w, rough, seed):
    """The plasma field replayed with the plugin's own U[0, 1] draws equals a loop transcription of
    kornia's diamond-square (kornia/kornia: kornia/contrib/diamond_square.py, as RandomPlasmaBrightness
    and RandomPlasmaContrast call it: random_scale 1, scale × roughness per level, no normalisation)."""
    draws = []
    g = gen(seed)

    def uniform(size):
        draws.append(torch.rand(size, generator=g, dtype=torch.float64).float())
        return draws[-1]

    field = U.plasma((1, 1, h, w), torch.tensor([rough]), gen(0), uniform=uniform)
    side = max(3, 2 ** int(np.ceil(np.log2(max(h, w, 3) - 1))) + 1)  # kornia's 2^k + 1 grid
    assert [tuple(d.shape[-2:]) for d in draws] == [(2, 2)] + [(s, s) for s in
                                                               [2**k + 1 for k in range(2, int(np.log2(side - 1)) + 1)]]
    img = kornia_seed(draws[0][0, 0].double().numpy())
    scale = 1.0
    for noise in draws[1:]:
        scale *= rough
        img = kornia_refine(img, scale, noise[0, 0].double().numpy())
    expected = torch.from_numpy(img[:h, :w]).float()
    assert torch.allclose(field[0, 0], expected, atol=1e-5), (field[0, 0] - expected).abs().max()


def test_plasma_field_is_not_normalised_and_rougher_with_roughness():
    fields = U.plasma((400, 1, 32, 32), torch.tensor([0.3] * 200 + [0.7] * 200), gen(0))
    assert 0.35 < fields.mean() < 0.6 and fields.min() >= 0
    assert (fields.amax((2, 3)) - fields.amin((2, 3))).mean() < 0.9  # kornia does not stretch to [0, 1]
    step = (fields[:, :, 1:] - fields[:, :, :-1]).abs().mean((1, 2, 3))
    assert step[:200].mean() < 0.5 * step[200:].mean()  # low roughness: coarse structure dominates


@pytest.mark.reference("attack", "ueraser", source="lafeat/ueraser:ueraser.py")
@pytest.mark.parametrize("op", ["plasma_brightness", "plasma_contrast"])
def test_each_plasma_op_leaves_half_the_images_unchanged(op):
    """lafeat/ueraser: ueraser.py builds RandomPlasmaBrightness(..., p=0.5) and RandomPlasmaContrast(...,
    p=0.5): with a fixed seed, the share of images an op leaves unchanged is 0.5 ± 0.05 (version 1
    applied both always: share 0)."""
    x = 0.2 + 0.6 * torch.rand(2000, 3, 8, 8, generator=gen(0))  # no image is a fixed point of either op
    out = getattr(U, op)(x, gen(1))
    unchanged = (out == x).flatten(1).all(1).float().mean().item()
    assert abs(unchanged - 0.5) <= 0.05, unchanged
    assert not torch.equal(out, getattr(U, op)(x, gen(2)))


@pytest.mark.reference("attack", "ueraser", source="lafeat/ueraser:ueraser.py")
def test_plasma_ranges_are_the_released_ones(monkeypatch):
    """lafeat/ueraser: ueraser.py: roughness U[0.3, 0.7] for both plasma ops, brightness intensity
    U[0.5, 1] (kornia: x + intensity·(2·field − 1)). With the field replaced by ones, brightness on black
    images returns the intensity itself."""
    seen = []

    def ones(shape, roughness, g, uniform=None):
        seen.append(roughness)
        return torch.ones(shape)

    monkeypatch.setattr(U, "plasma", ones)
    out = U.plasma_brightness(torch.zeros(4000, 1, 2, 2), gen(0))
    intensity = out[:, 0, 0, 0]
    applied = intensity[intensity > 0]
    assert applied.min() >= 0.5 - 1e-6 and applied.max() <= 1.0
    assert applied.min() < 0.51 and applied.max() > 0.99 and abs(applied.mean().item() - 0.75) < 0.02
    U.plasma_contrast(torch.zeros(4000, 1, 2, 2), gen(1))
    for r in seen:
        assert r.min() >= 0.3 and r.max() <= 0.7 and r.min() < 0.31 and r.max() > 0.69


@pytest.mark.reference("attack", "ueraser", source="lafeat/ueraser:ueraser.py")
def test_pipeline_order_and_defaults_are_the_released_ones(monkeypatch):
    """lafeat/ueraser: ueraser.py: AugmentationSequential(plasma brightness, plasma contrast, channel
    shuffle p=0.5, TrivialAugment), in that order; the plugin's defaults reproduce those parameters."""
    calls = []

    def spy(name):
        original = getattr(U, name)

        def wrapped(x, g, **kw):
            calls.append((name, kw))
            return original(x, g, **kw)
        return wrapped

    for name in ("plasma_brightness", "plasma_contrast", "channel_shuffle", "trivial_augment"):
        monkeypatch.setattr(U, name, spy(name))
    plugin = U.UEraser()
    plugin.augment(torch.rand(4, 3, 8, 8, generator=gen(0)), gen(1))
    assert [c[0] for c in calls] == ["plasma_brightness", "plasma_contrast", "channel_shuffle", "trivial_augment"]
    assert calls[0][1] == {"intensity": (0.5, 1.0), "p": 0.5} and calls[1][1] == {"p": 0.5}
    assert calls[2][1] == {"p": 0.5}
    assert U.PLASMA_ROUGHNESS == (0.3, 0.7) and plugin.repeats == 5


def test_channel_shuffle_changes_the_expected_share():
    """RandomChannelShuffle(p=0.5): half the images get a uniform permutation, 1/6 of which is the
    identity, so 0.5 · 5/6 ≈ 0.417 of RGB images change."""
    x = torch.rand(3000, 3, 2, 2, generator=gen(0))
    changed = (U.channel_shuffle(x, gen(1)) != x).flatten(1).any(1).float().mean().item()
    assert abs(changed - 0.5 * 5 / 6) < 0.04, changed


@pytest.mark.reference("attack", "ueraser", source="kornia/kornia:kornia/enhance/adjust.py")
def test_trivial_augment_posterize_is_kornias():
    """kornia's TrivialAugment default policy has ("posterize", 0.0, 4): bits ~ U[0, 4] truncated to an
    integer (0..3 bits kept), and kornia's posterize keeps the top ``bits`` bits of the truncated 8-bit
    value, bits 0 giving a black image (kornia/kornia: kornia/enhance/adjust.py, posterize)."""
    kind = U.COLOUR.index("posterize")
    x = torch.rand(40, 3, 4, 4, generator=gen(0))
    u = torch.linspace(0, 0.999, 40)
    out = U._colour_op(kind, x, u)
    for i in range(40):
        bits = int(4 * u[i].item())
        v = (x[i] * 255).to(torch.uint8).numpy()
        expected = np.zeros_like(v) if bits == 0 else (v >> (8 - bits)) << (8 - bits)
        assert torch.allclose(out[i] * 255, torch.from_numpy(expected.astype(np.float32)), atol=1e-3), (i, bits)


PROPERTY = settings(max_examples=20, deadline=None)


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
