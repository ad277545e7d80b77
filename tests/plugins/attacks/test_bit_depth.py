"""The ``bit-depth`` attack (plugins/dememo_plugins/attacks/bit_depth.py): behaviour tests and reference checks.

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
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from dememo_plugins.attacks.bit_depth import BitDepth, reduce_bit_depth

from support.attacks.learner import transformed
from support.attacks.transforms import PROPERTY, images, seeds


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


@PROPERTY
@given(seed=seeds, bits=st.integers(1, 8))
def test_bit_depth_values_lie_on_the_grid(seed, bits):
    x = images(3, 3, 5, seed)
    levels = 2**bits - 1
    r = reduce_bit_depth(x, bits, "round")
    k = r * levels
    assert torch.allclose(k, k.round(), atol=1e-4) and r.min() >= 0 and r.max() <= 1
    assert (r - x).abs().max() <= 0.5 / levels + 1e-6, "rounding moves a value by at most half a step"
    p = reduce_bit_depth(x, bits, "posterize")
    step = 2 ** (8 - bits)
    q = p * 255 / step
    assert torch.allclose(q, q.round(), atol=1e-3) and p.max() <= 1 - (step - 1) / 255 + 1e-6
    assert (p <= (x * 255).round() / 255 + 1e-6).all(), "posterize truncates"
    assert len(torch.unique(r)) <= levels + 1 and len(torch.unique(p)) <= 2**bits


def test_bit_depth_erases_small_perturbations_away_from_level_boundaries():
    x = torch.full((2, 3, 4, 4), 2 / 3)  # a level of the 2-bit grid
    delta = (8 / 255) * (2 * images(2, 3, 4, 0) - 1)
    assert torch.equal(reduce_bit_depth(x + delta, 2), reduce_bit_depth(x, 2))
    with pytest.raises(ValueError, match="bits"):
        BitDepth(bits=0)
    with pytest.raises(ValueError, match="mode"):
        BitDepth(mode="floor")
