"""The ``grayscale`` attack (plugins/dememo_plugins/attacks/grayscale.py): behaviour tests and reference checks.

Reference checks of the learner-side attacks (issue 17): UEraser, bit-depth, grayscale, JPEG, adversarial
training, orthogonal projection, DFR and early stopping.

- bit-depth, grayscale, jpeg: ISS's compressions in liuzrcc/ImageShortcutSqueezing, ``augmentations.py``
  (``aug_train``: torchvision ``RandomPosterize(bits, p=1)``, ``Grayscale(3)`` and PIL JPEG ``save(...,
  quality=q)`` on the 8-bit PIL training images).

grayscale / jpeg / bit-depth are data transforms: tested as transforms (luma, a real JPEG round trip
bit-identical to PIL's, the quantisation grid) and for the shortcut each one squeezes out.
adversarial-training is tested through its perturbation function (step ε/4, δ in the ball, eval-mode
search, loss increases). early-stop is tested for returning the best-holdout epoch's weights and for
never looking at the monitor.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dememo_plugins.attacks.grayscale import LUMA, Grayscale, to_grayscale

from support.attacks.learner import pil_images, transformed
from support.attacks.transforms import PROPERTY, data_of, images, seeds


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


@PROPERTY
@given(seed=seeds, size=st.sampled_from([2, 5, 16]))
def test_grayscale_is_bt601_luma_replicated(seed, size):
    x = images(4, 3, size, seed)
    g = to_grayscale(x)
    assert g.shape == x.shape
    luma = LUMA[0] * x[:, 0] + LUMA[1] * x[:, 1] + LUMA[2] * x[:, 2]
    for c in range(3):
        assert torch.allclose(g[:, c], luma, atol=1e-6)


def test_grayscale_agrees_with_pil_on_8_bit_images():
    from PIL import Image

    u8 = (images(3, 3, 8, 0) * 255).round().to(torch.uint8)
    ours = to_grayscale(u8.float() / 255)[:, 0] * 255
    pil = torch.stack([torch.from_numpy(np.array(Image.fromarray(im.permute(1, 2, 0).numpy()).convert("L"))) for im in u8])
    assert (ours - pil.float()).abs().max() <= 0.5 + 1e-4  # PIL rounds the same weighted sum to an integer


def test_grayscale_other_channel_counts():
    one = images(2, 1, 4, 0)
    assert torch.equal(to_grayscale(one), one), "one-channel data is already grayscale"
    four = images(2, 4, 4, 0)
    assert torch.allclose(to_grayscale(four), four.mean(1, keepdim=True).expand_as(four))
    data = data_of(one)
    assert Grayscale().transform(data) is data


@PROPERTY
@given(seed=seeds)
def test_grayscale_erases_a_luma_free_colour_shortcut(seed):
    """A class-wise colour offset orthogonal to the luma weights (a pure chroma shortcut) vanishes."""
    x = 0.25 + 0.5 * images(6, 3, 4, seed)  # away from the clip boundaries
    chroma = torch.tensor([LUMA[1], -LUMA[0], 0.0])  # w · chroma = 0
    delta = (8 / 255) * chroma / chroma.abs().max()
    shifted = x + delta.view(1, 3, 1, 1) * torch.tensor([1.0, -1.0, 0.5, 0.0, 1.0, -1.0]).view(6, 1, 1, 1)
    assert not torch.allclose(shifted, x)
    assert torch.allclose(to_grayscale(shifted), to_grayscale(x), atol=1e-6)
