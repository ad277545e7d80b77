"""In-memory labelled image data, resident on one device, with a content lineage for cache keys.

Images are float32 N×C×H×W in [0, 1]; labels int64. ``index`` holds each sample's position in its
dataset's *train* split (or its own split for val/test), so subsets, forget sets and poisoned copies keep
sample identity; a sample from no split (generated noise, ``Data.synthetic``) has index ``SYNTHETIC`` (−1).
``fingerprint`` identifies the content: a loaded split hashes its tensors once; a subset
derives its fingerprint from its parent and the chosen indices, so no large tensor is re-hashed.
"""

from __future__ import annotations

import attrs
import torch

from dememo.hashing import digest, tensor_digest

#: ``Data.index`` of a sample from no split of the dataset (``Data.synthetic``)
SYNTHETIC = -1


@attrs.frozen(eq=False)
class Data:
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    fingerprint: str
    index: torch.Tensor = attrs.field()

    @index.default
    def _index(self) -> torch.Tensor:
        return torch.arange(len(self.y), device=self.y.device)

    def __attrs_post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"images must be N×C×H×W, got shape {tuple(self.x.shape)}")
        if not (len(self.x) == len(self.y) == len(self.index)):
            raise ValueError("x, y and index must have the same length")

    @classmethod
    def from_tensors(cls, x: torch.Tensor, y: torch.Tensor, num_classes: int, tag: str = "") -> Data:
        """Build from raw tensors, fingerprinting their content."""
        x = x.to(torch.float32).contiguous()
        y = y.to(torch.int64).contiguous()
        return cls(x=x, y=y, num_classes=num_classes, fingerprint=digest([tag, tensor_digest(x, y)]))

    @classmethod
    def synthetic(cls, x: torch.Tensor, y: torch.Tensor, num_classes: int, tag: str) -> Data:
        """Samples that are in no split of the dataset (UNSIR's error-maximising noise, generated images), to
        train on with ``ctx.fit``, alone or joined to real data (``torch.cat`` of ``x``, ``y`` and ``index``,
        with a fingerprint made of both parts'): their ``index`` is ``SYNTHETIC`` (−1), which no lookup by
        dataset position (``ctx.scores(name)[data.index]``) may use, and their fingerprint comes from ``tag`` and
        their content. ``x`` is detached (a tensor being optimised may be passed) and should lie in [0, 1], as
        images do (``ctx.fit`` does not check)."""
        out = cls.from_tensors(x.detach(), y.to(x.device), num_classes, tag=f"synthetic:{tag}")
        return attrs.evolve(out, index=torch.full((len(out),), SYNTHETIC, dtype=torch.int64, device=out.y.device))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.x.device

    def subset(self, positions: torch.Tensor, tag: str = "subset") -> Data:
        """The samples at ``positions`` (positions in *this* object, not dataset indices)."""
        positions = torch.as_tensor(positions, dtype=torch.int64, device=self.y.device)
        return Data(
            x=self.x[positions],
            y=self.y[positions],
            num_classes=self.num_classes,
            fingerprint=digest([self.fingerprint, tag, tensor_digest(positions)]),
            index=self.index[positions],
        )

    def with_images(self, x: torch.Tensor, fingerprint: str) -> Data:
        """The same samples and labels with other images (e.g. poisoned), under a given fingerprint."""
        if x.shape != self.x.shape:
            raise ValueError(f"image shape {tuple(x.shape)} differs from {tuple(self.x.shape)}")
        return attrs.evolve(self, x=x, fingerprint=fingerprint)

    def to(self, device: torch.device | str) -> Data:
        """On ``device``, images stored channels-last (NHWC) to match the models (``training.place``);
        indexing a batch keeps the layout, so no per-batch conversion happens in the training loop."""
        device = torch.device(device)
        x = self.x.to(device).contiguous(memory_format=torch.channels_last)
        if x is self.x and self.x.device == device:
            return self
        return attrs.evolve(self, x=x, y=self.y.to(device), index=self.index.to(device))


@attrs.frozen(eq=False)
class Splits:
    """A dataset's fixed splits. ``train`` is what models learn from; ``val`` selects; ``test`` reports."""

    train: Data
    val: Data
    test: Data

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.train.shape

    def to(self, device: torch.device | str) -> Splits:
        return Splits(self.train.to(device), self.val.to(device), self.test.to(device))


@attrs.frozen(eq=False)
class Task:
    """What an unlearner receives (the NeurIPS 2023 challenge shape): retain, forget and validation data.

    The test split is withheld from unlearners: it is for reporting only.
    """

    retain: Data
    forget: Data
    val: Data
