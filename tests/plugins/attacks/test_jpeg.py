"""The ``jpeg`` attack (plugins/dememo_plugins/attacks/jpeg.py): behaviour tests and reference checks.

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

import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dememo_plugins.attacks.jpeg import Jpeg, jpeg_round_trip

from support.attacks.learner import pil_images, transformed
from support.attacks.transforms import images


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


def pil_round_trip(x: torch.Tensor, quality: int) -> torch.Tensor:
    from PIL import Image

    out = []
    for im in (x * 255).round().to(torch.uint8):
        arr = im.permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        back = np.array(Image.open(buf)).astype(np.float32) / 255
        out.append(torch.from_numpy(back[None] if back.ndim == 2 else back.transpose(2, 0, 1)))
    return torch.stack(out)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("quality", [10, 75])
def test_jpeg_is_a_real_round_trip(channels, quality):
    """Bit-identical to PIL's JPEG (ISS's codec) at the same quality; the output is a decoded JPEG, so
    encoding it again changes it little (colour: not at all) while it differs clearly from the input."""
    x = images(5, channels, 16, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        out = jpeg_round_trip(x, quality)
        again = jpeg_round_trip(out, quality)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.equal(out, pil_round_trip(x, quality))
    assert torch.equal(out, (out * 255).round() / 255), "a decoded JPEG is 8-bit"
    first, second = (out - x).abs().mean(), (again - out).abs().mean()
    assert first > 10 / 255 if quality == 10 else first > 2 / 255
    assert second < first / 5


def test_jpeg_squeezes_high_frequency_noise_and_handles_other_channel_counts():
    smooth = F.interpolate(images(4, 3, 4, 2), size=(16, 16), mode="bilinear", align_corners=False)
    checker = ((torch.arange(16).view(-1, 1) + torch.arange(16).view(1, -1)) % 2 * 2 - 1).float() * 8 / 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        a, b = jpeg_round_trip(smooth, 10), jpeg_round_trip((smooth + checker).clamp(0, 1), 10)
        four = jpeg_round_trip(images(2, 4, 8, 3), 10)
    # the ±8/255 checkerboard (the highest JPEG frequency) is almost entirely quantised away
    assert (b - a).abs().mean() < 0.25 * (8 / 255)
    assert four.shape == (2, 4, 8, 8) and torch.isfinite(four).all()
    with pytest.raises(ValueError, match="quality"):
        Jpeg(quality=0)
