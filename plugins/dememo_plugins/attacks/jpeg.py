"""``jpeg``: train on JPEG-compressed copies of the training images (train stage, learner side).

JPEG compression from Image Shortcut Squeezing (ISS; Liu, Zhao & Larson, "Image Shortcut Squeezing:
Countering Perturbative Availability Poisons with Compression", ICML 2023): every training image goes
through a real JPEG encode/decode round trip at ``quality`` (ISS: 10), x' = decode(encode(x, q)), and a
fresh model is trained on (x', y) with the suite's recipe. Low-quality JPEG quantises the high-frequency
DCT coefficients in which most perturbative poisons live. Reference code:
liuzrcc/ImageShortcutSqueezing, ``augmentations.py`` (``aug_train`` with ``--jpeg q``: PIL
``image.save(stream, "JPEG", quality=q)`` and ``Image.open``; its ``optimice=True`` is a misspelt keyword
that PIL ignores, so no optimised Huffman tables); checked against PIL in
``tests/plugins/attacks/test_jpeg.py``. Published on CIFAR-10 / ResNet-18 (no defence →
JPEG-10): clean 94.68 → 85.38 %, EM 21.05 → 81.50 %, OPS 36.55 → 82.53 %, AR 13.28 → 85.15 %.

Choices and deviations:

- The codec is libjpeg(-turbo) through ``torchvision.io.encode_jpeg``/``decode_jpeg`` (ISS uses PIL,
  which wraps the same library); both use the library defaults (baseline, 4:2:0 chroma subsampling for
  colour). Images are rounded to 8 bits first (x·255, round half to even), as any JPEG file must be.
- The round trip is done once, before training, on CPU tensors (it is a fixed data transform; ISS
  re-encodes every epoch, which gives the same images since the transform is deterministic), then moved
  back to the data's device.
- Only training images are compressed; the returned model (the plain architecture) is evaluated on the
  clean test images, as in the ISS default protocol.
- The run starts from the initial weights and batch order of the standard training on the
  untransformed data (``_learner.paired``), so attack-minus-none differences are paired.
- One- and three-channel images are encoded as grayscale and colour JPEGs. JPEG has no other channel
  counts: those images are encoded one channel at a time as grayscale JPEGs (documented deviation).

Measured on noisy-shapes (small-cnn, quick recipe, test accuracy, seeds 0 / 1): quality 10 on 16×16
images under strong pixel noise destroys much of the class signal itself: clean 0.91 / 0.95 → 0.40 /
0.51, EM 0.25 / 0.24 → 0.30 / 0.37, OPS 0.45 / 0.65 → 0.44 / 0.32. The output is bit-identical to PIL's
JPEG at the same quality (tests/plugins/attacks/test_jpeg.py).
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import attrs
import torch

import dememo
from dememo import validate

from ._learner import paired, train_standard, with_transformed_images


def jpeg_round_trip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Real JPEG encode/decode of N×C×H×W float images in [0, 1] at ``quality``; float result on x's device."""
    from torchvision.io import decode_jpeg, encode_jpeg  # here, not at import: 1.6 s on every dememo-bench start

    n, c, h, w = x.shape
    if n == 0:
        return x.clone()
    device = x.device
    u8 = (x.detach().to("cpu", torch.float32) * 255).round().clamp(0, 255).to(torch.uint8)
    planes = u8.contiguous() if c in (1, 3) else u8.reshape(n * c, 1, h, w).contiguous()
    with warnings.catch_warnings():  # torchvision ≥ 0.29 deprecates its image codecs in favour of torchcodec
        warnings.simplefilter("ignore", DeprecationWarning)
        encoded = encode_jpeg(list(planes), quality=quality)
        decoded = torch.stack(decode_jpeg(encoded))
    return (decoded.reshape(n, c, h, w).to(torch.float32) / 255).to(device)


@attrs.define
class Jpeg(dememo.Attack):
    """JPEG compression (ISS, Liu et al. ICML 2023): train on JPEG round trips of the images (quality 10)."""

    name: ClassVar[str] = "jpeg"
    version: ClassVar[str] = "1"
    stages: ClassVar[tuple[str, ...]] = ("train",)
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability",)
    quality: int = 10

    def __attrs_post_init__(self):
        validate.in_range(1, 100, quality=self.quality)

    def transform(self, data: dememo.Data) -> dememo.Data:
        return with_transformed_images(data, jpeg_round_trip(data.x, self.quality), "jpeg", self.params())

    def train(self, data, ctx):
        return train_standard(self.transform(data.train), paired(ctx, data.train), data.monitor)


@dememo.hookimpl
def register_attacks(register):
    register(Jpeg)
