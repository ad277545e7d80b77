"""Reference checks of the learner-side attacks (issue 17): UEraser, bit-depth, grayscale, JPEG, adversarial
training, orthogonal projection, DFR and early stopping.

Each check transcribes the released code's definition independently into a small loop or array formula
and compares the plugin with it, so that a plugin that is not the published method fails:

- UEraser: the authors' pipeline in lafeat/ueraser, ``ueraser.py`` (kornia ``RandomPlasmaBrightness``
  roughness U[0.3, 0.7], intensity U[0.5, 1], p = 0.5; ``RandomPlasmaContrast`` roughness U[0.3, 0.7],
  p = 0.5; ``RandomChannelShuffle`` p = 0.5; ``TrivialAugment``), with kornia's definitions in
  kornia/kornia, ``kornia/augmentation/_2d/intensity/plasma.py``, ``kornia/contrib/diamond_square.py``
  and ``kornia/enhance/adjust.py`` (posterize).
- bit-depth, grayscale, jpeg: ISS's compressions in liuzrcc/ImageShortcutSqueezing, ``augmentations.py``
  (``aug_train``: torchvision ``RandomPosterize(bits, p=1)``, ``Grayscale(3)`` and PIL JPEG ``save(...,
  quality=q)`` on the 8-bit PIL training images).
- adversarial-training: Madry et al.'s L∞ PGD in MadryLab/cifar10_challenge, ``pgd_attack.py``
  (``LinfPGDAttack.perturb``; ``config.json``: ε = 8, 10 steps of 2 on the 0–255 scale, random start).
- orthogonal-projection and dfr: psandovalsegura/learn-from-unlearnable, ``utils_projection.py``
  (``project_data(..., use_q_matrix=True)``) and ``dfr_step_2.py`` (last layer only, L-BFGS).
- early-stop: no released code; the definition (first argmax of holdout accuracy over the epochs of the
  standard run) is transcribed.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import dememo
from dememo.models import last_linear
from dememo.testing import tiny_context, tiny_splits
from dememo.training import Recipe
from dememo_plugins.attacks import ueraser as U
from dememo_plugins.attacks.adversarial_training import AdversarialTraining
from dememo_plugins.attacks.bit_depth import BitDepth, reduce_bit_depth
from dememo_plugins.attacks.dfr import DeepFeatureReweighting
from dememo_plugins.attacks.early_stop import EarlyStop
from dememo_plugins.attacks.grayscale import Grayscale
from dememo_plugins.attacks.jpeg import Jpeg
from dememo_plugins.attacks.orthogonal_projection import OrthogonalProjection


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def transformed(plugin, x: torch.Tensor) -> torch.Tensor:
    """The training images a data-transform attack (bit-depth) trains on, for images ``x``."""
    return plugin.transform(dememo.Data.from_tensors(x, torch.zeros(len(x), dtype=torch.int64), 2)).x


# --- UEraser: the plasma field, transcribed from kornia's diamond-square with loops --------------------


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


# --- UEraser: the released pipeline's probabilities, ranges and order ------------------------------------


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


# --- bit-depth: ISS's posterize ---------------------------------------------------------------------------


@pytest.mark.reference("attack", "bit-depth", source="liuzrcc/ImageShortcutSqueezing:augmentations.py")
@settings(max_examples=20, deadline=None)
@given(bits=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_bit_depth_default_is_iss_posterize(bits, seed):
    """liuzrcc/ImageShortcutSqueezing: augmentations.py applies torchvision RandomPosterize(bits=bdr,
    p=1) to the 8-bit PIL training images: every value keeps its top ``bits`` bits (v & ~(2^(8−b) − 1)).
    Checked against that bitwise formula and PIL's own ImageOps.posterize on a small array; the plugin's
    default mode is this one."""
    v = np.random.default_rng(seed).integers(0, 256, size=(2, 3, 4, 5), dtype=np.uint8)
    x = torch.from_numpy(v.astype(np.float32) / 255)
    mask = (0xFF << (8 - bits)) & 0xFF
    expected = (v & mask).astype(np.float32)
    got = transformed(BitDepth(bits=bits), x) * 255
    assert torch.allclose(got, torch.from_numpy(expected), atol=1e-3)
    via_pil = np.stack([np.asarray(ImageOps.posterize(Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))), bits))
                        .transpose(2, 0, 1) for img in v]).astype(np.float32)
    assert np.array_equal(via_pil, expected)


@pytest.mark.reference("attack", "bit-depth", source="liuzrcc/ImageShortcutSqueezing:augmentations.py")
def test_bit_depth_default_parameters():
    """The plugin's default is ISS's posterize; its 2 bits are dememo's choice (the released code takes the
    bit count as a command-line argument, ``--bdr``, with no default)."""
    plugin = BitDepth()
    assert (plugin.mode, plugin.bits) == ("posterize", 2)
    x = torch.tensor([0.0, 63 / 255, 64 / 255, 200 / 255, 1.0]).view(1, 1, 1, 5)
    assert torch.allclose(transformed(plugin, x) * 255, torch.tensor([0.0, 0, 64, 192, 192]).view(1, 1, 1, 5))
    assert torch.equal(reduce_bit_depth(x, 2, "posterize"), transformed(plugin, x))


# --- grayscale and JPEG: ISS's PIL transforms --------------------------------------------------------------


def pil_images(v: np.ndarray) -> list[Image.Image]:
    """N×3×H×W uint8 → RGB PIL images, as ISS's loaders hold CIFAR images."""
    return [Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0)), "RGB") for img in v]


@pytest.mark.reference("attack", "grayscale", source="liuzrcc/ImageShortcutSqueezing:augmentations.py")
def test_grayscale_is_iss_luma_up_to_its_8_bit_rounding():
    """liuzrcc/ImageShortcutSqueezing: augmentations.py appends torchvision ``Grayscale(3)``: PIL's
    ``convert("L")`` (ITU-R BT.601, L = 0.299 R + 0.587 G + 0.114 B, rounded to 8 bits) copied to three
    channels. The plugin computes the same luma in float (documented: no 8-bit rounding), so it must
    agree with PIL to within half an 8-bit step plus PIL's fixed-point error, on every pixel and channel."""
    v = np.random.default_rng(0).integers(0, 256, size=(6, 3, 5, 7), dtype=np.uint8)
    expected = np.stack([np.repeat(np.asarray(im.convert("L"))[None], 3, 0) for im in pil_images(v)]).astype(np.float32)
    got = transformed(Grayscale(), torch.from_numpy(v.astype(np.float32) / 255)) * 255
    assert (got - torch.from_numpy(expected)).abs().max() <= 0.5 + 0.01
    assert torch.equal(got[:, 0], got[:, 1]) and torch.equal(got[:, 0], got[:, 2])
    assert not torch.allclose(got[:, 0], torch.from_numpy(v.astype(np.float32)).mean(1), atol=0.5)  # not the channel mean


@pytest.mark.reference("attack", "jpeg", source="liuzrcc/ImageShortcutSqueezing:augmentations.py")
@pytest.mark.parametrize("quality", [10, 50])
def test_jpeg_is_iss_pil_round_trip(quality):
    """liuzrcc/ImageShortcutSqueezing: augmentations.py: ``image.save(stream, "JPEG", quality=q)`` then
    ``Image.open`` (its ``optimice=True`` is a typo PIL ignores), ISS's default q = 10. The plugin's
    training images equal PIL's round trip of the same 8-bit images to within one 8-bit level (both wrap
    libjpeg with its default 4:2:0 chroma subsampling; the IDCT may differ by one level)."""
    v = np.random.default_rng(quality).integers(0, 256, size=(4, 3, 16, 16), dtype=np.uint8)
    v = np.clip(v.astype(int) // 4 + np.linspace(0, 180, 16, dtype=int)[None, None, None], 0, 255).astype(np.uint8)
    expected = []
    for im in pil_images(v):
        stream = io.BytesIO()
        im.save(stream, "JPEG", quality=quality)
        stream.seek(0)
        expected.append(np.asarray(Image.open(stream)).transpose(2, 0, 1))
    expected = torch.from_numpy(np.stack(expected).astype(np.float32))
    got = transformed(Jpeg(quality=quality), torch.from_numpy(v.astype(np.float32) / 255)) * 255
    assert (got - expected).abs().max() <= 1.0 + 1e-3
    assert (got - torch.from_numpy(v.astype(np.float32))).abs().mean() > 2  # it really compressed
    assert Jpeg().quality == 10


# --- adversarial training: Madry et al.'s PGD ---------------------------------------------------------------


def madry_linf_pgd(model, x_nat, y, start, eps, steps, step_size):
    """MadryLab/cifar10_challenge: pgd_attack.py, LinfPGDAttack.perturb, transcribed (0–1 scale): from the
    random start x_nat + U[−ε, ε], repeat: x += a·sign(∇_x xent); clip to [x_nat − ε, x_nat + ε]; clip
    to the valid pixel range."""
    x = x_nat + start
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        x = x.detach() + step_size * grad.sign()
        x = torch.maximum(torch.minimum(x, x_nat + eps), x_nat - eps)
        x = x.clamp(0, 1)
    return x - x_nat


@pytest.mark.reference("attack", "adversarial-training", source="MadryLab/cifar10_challenge:pgd_attack.py")
def test_adversarial_training_perturbation_is_madrys_pgd(monkeypatch):
    """The inner maximisation equals a transcription of Madry et al.'s LinfPGDAttack.perturb with the
    same random start, at their CIFAR-10 settings (config.json: ε = 8/255, 10 steps of 2/255 = ε/4).
    Images are kept ε away from 0 and 1 so that dememo's clipping of the random start itself (Madry's
    first gradient is taken at the unclipped start) cannot matter."""
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.Tanh(), nn.Linear(16, 4)).double()
    x = 8 / 255 + (1 - 16 / 255) * torch.rand(32, 3, 4, 4, generator=gen(0), dtype=torch.float64)
    y = torch.randint(0, 4, (32,), generator=gen(1))
    plugin = AdversarialTraining()
    assert (plugin.eps, plugin.steps, plugin.alpha) == (8 / 255, 10, 2 / 255)
    start = (2 * torch.rand(x.shape, generator=gen(2), dtype=torch.float64) - 1) * plugin.eps
    monkeypatch.setattr(dememo.pgd, "random_start", lambda shape, budget, g: start.clone())
    got = plugin.perturb(model, x, y, gen(3))
    expected = madry_linf_pgd(model, x, y, start, plugin.eps, plugin.steps, plugin.alpha)
    assert torch.allclose(got, expected, atol=1e-9), (got - expected).abs().max()
    assert got.abs().max() <= plugin.eps + 1e-12 and (got.abs() > plugin.eps - 1e-9).float().mean() > 0.5  # mostly saturated


# --- orthogonal projection, DFR and early stopping -----------------------------------------------------------


def authors_project_data(data: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """psandovalsegura/learn-from-unlearnable: utils_projection.py, ``project_data(data, vectors,
    use_q_matrix=True)`` as orthogonal_projection_step_2.py calls it, transcribed: normalise each weight
    row, Q = QR(rowsᵀ), then for each row q of Qᵀ in turn: data −= (data·q) qᵀ."""
    rows = np.stack([v / np.linalg.norm(v) for v in vectors])
    q, _ = np.linalg.qr(rows.T)
    out = data.copy()
    for vec in q.T:
        out -= (out @ vec).reshape(-1, 1) * vec.reshape(1, -1)
    return out


@pytest.mark.reference("attack", "orthogonal-projection",
                       source="psandovalsegura/learn-from-unlearnable:utils_projection.py")
def test_orthogonal_projection_is_the_authors_projection_of_the_fitted_weights():
    """The plugin's projected training images equal the authors' ``project_data(..., use_q_matrix=True)``
    applied with the plugin's own fitted bias-free linear weights W, and W·x' = 0 afterwards. The
    weight rows are far from orthogonal, so projecting on the normalised rows one after another (the
    authors' ``use_q_matrix=False`` path) would differ; that is checked too."""
    splits = tiny_splits(n_train=90, shape=(1, 4, 4), num_classes=3)
    plugin = OrthogonalProjection(linear_steps=30)
    projected, weight = plugin.projected(splits.train, tiny_context(splits))
    flat = splits.train.x.reshape(len(splits.train), -1).double().numpy()
    expected = authors_project_data(flat, weight.double().numpy())
    got = projected.x.reshape(len(splits.train), -1).double().numpy()
    assert np.allclose(got, expected, atol=1e-5), np.abs(got - expected).max()
    assert np.abs(got @ weight.double().numpy().T).max() < 1e-4
    rows = weight.double().numpy() / np.linalg.norm(weight.double().numpy(), axis=1, keepdims=True)
    assert np.abs(rows @ rows.T - np.eye(3)).max() > 0.1  # non-orthogonal rows: QR matters
    naive = flat.copy()
    for vec in rows:
        naive -= (naive @ vec).reshape(-1, 1) * vec.reshape(1, -1)
    assert np.abs(naive - expected).max() > 1e-3


@pytest.mark.reference("attack", "dfr", source="psandovalsegura/learn-from-unlearnable:dfr_step_2.py")
def test_dfr_is_a_last_layer_logistic_regression_on_the_holdout():
    """psandovalsegura/learn-from-unlearnable: dfr_step_2.py freezes every parameter but the last linear
    layer and fits that layer by cross-entropy on clean held-out images (L-BFGS, lr 0.5). Transcribed
    independently: L-BFGS on the frozen penultimate features of the holdout set, with the same L2 term
    as the plugin's weight decay so that the optimum is finite. The plugin (SGD through ctx.fit) must
    change only the last layer and reach that optimum's objective to within 0.01 nats, while the head
    trained on the training set is far from it (the holdout has a third of its labels flipped)."""
    splits = tiny_splits(n_train=120, n_val=60, shape=(1, 4, 4), num_classes=3)
    ctx = tiny_context(splits)
    model = ctx.train(splits.train)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # a holdout with a third of its labels flipped: not separable, so the optimum is a real target
    noisy = splits.val.y.clone()
    flip = torch.rand(len(noisy), generator=gen(5)) < 1 / 3
    noisy[flip] = (noisy[flip] + 1) % 3
    holdout = dememo.Data.from_tensors(splits.val.x, noisy, 3, tag="noisy-holdout")
    lam = 0.01  # L2 on the layer (SGD weight decay λ ⇔ + λ/2·‖θ‖²): a strongly convex, finite optimum
    plugin = DeepFeatureReweighting(reinit=True, epochs=300, lr=0.5, batch_size=60, weight_decay=lam)
    plugin.reweight(model, holdout, ctx)
    after = model.state_dict()
    last = last_linear(model)
    names = {n for n, p in model.named_parameters() if any(p is q for q in last.parameters())}
    assert all(torch.equal(before[k], after[k]) for k in before if k not in names)
    assert any(not torch.equal(before[k], after[k]) for k in names)

    feats = []
    hook = last.register_forward_hook(lambda m, i, o: feats.append(i[0].detach()))
    model.eval()
    with torch.no_grad():
        model(holdout.x)
    hook.remove()
    z, y = feats[0].double(), holdout.y
    w = torch.zeros(last.out_features, last.in_features, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(last.out_features, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=0.5, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-12)

    def objective(weight, bias):
        penalty = lam / 2 * (weight.pow(2).sum() + bias.pow(2).sum())
        return torch.nn.functional.cross_entropy(z @ weight.T + bias, y) + penalty

    def closure():
        opt.zero_grad()
        loss = objective(w, b)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    optimum = objective(w, b).item()
    with torch.no_grad():
        plugin_loss = objective(last.weight.double(), last.bias.double()).item()
        weight_name, bias_name = (next(n for n in names if n.endswith(k)) for k in ("weight", "bias"))
        trained_head_loss = objective(before[weight_name].double(), before[bias_name].double()).item()
    assert plugin_loss <= optimum + 0.01, (plugin_loss, optimum)
    assert trained_head_loss > optimum + 0.1, (trained_head_loss, optimum)  # the head fitted on train is not it


@pytest.mark.reference("attack", "early-stop", source="paper: SoK: Unlearnability and Unlearning for Model "
                       "Dememorization (arXiv 2605.11592), early stopping / peak accuracy as a learner-side attack")
def test_early_stop_returns_the_first_best_holdout_epoch_of_the_standard_run():
    """e* = argmax_e acc(θ_e, holdout), earliest on ties, θ_e the weights after epoch e of the standard run
    (the none row's). Transcribed: record every epoch's weights of an independent standard run with the
    same seed, take the first argmax of their holdout accuracies, and compare weights."""
    splits = tiny_splits(n_train=120, n_val=40, shape=(1, 4, 4), num_classes=3)
    recipe = Recipe(epochs=6, batch_size=30)
    model, history = EarlyStop().train(dememo.LearnerData(splits.train, splits.val, splits.test),
                                       tiny_context(splits, seed=4, recipe=recipe))
    snapshots = []
    ctx = tiny_context(splits, seed=4, recipe=recipe).for_training_on(splits.train)  # the none row's run
    ctx.fit(ctx.new_model(), splits.train, after_epoch=lambda m, e: snapshots.append(copy.deepcopy(m.state_dict())))
    accs = []
    probe = ctx.new_model()
    for state in snapshots:
        probe.load_state_dict(state)
        probe.eval()
        with torch.no_grad():
            accs.append((probe(splits.val.x).argmax(1) == splits.val.y).float().mean().item())
    best = int(np.argmax(accs))  # numpy's argmax returns the first maximum
    assert [r["holdout_acc"] for r in history.epochs] == pytest.approx(accs)
    assert all(torch.equal(v, snapshots[best][k]) for k, v in model.state_dict().items())
    assert [r["chosen"] for r in history.epochs].index(1.0) == best
