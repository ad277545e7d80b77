"""``local-data``: your own images without writing a plugin — a NumPy ``.npz`` file or a folder of images with one
sub-folder per class, named in a suite file (``plugin = "local-data"``, ``params = { path = ... }``) or by
``--set local-data.path=...``.

**An .npz file** holds ``x`` and ``y`` (split here), or ``x_train``/``y_train`` and ``x_test``/``y_test``
(optionally ``x_val``/``y_val``; without them the validation split is drawn from the training split). ``x``:
uint8 (0-255, scaled by 1/255) or float in [0, 1]; N×H×W (grey), N×C×H×W or N×H×W×C with C = 1 or 3
(``layout`` decides when both readings fit); ``y``: integer class labels 0…K−1 (K = ``num_classes``, else the
largest label + 1). Read with ``allow_pickle=False``.

**An image folder** has one sub-folder per class, read as torchvision's ``ImageFolder`` reads it (checked against
it): classes numbered in sorted order of the folder names, each class folder walked recursively in sorted order,
images with its extensions (.jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, .tiff, .webp). Deviations from
ImageFolder with its default loader (``pil_loader``, ``torchvision/datasets/folder.py``), each because a
benchmark needs fixed tensors and no silent change of pixels: (1) hidden class folders (``.ipynb_checkpoints``)
are skipped, where ImageFolder would make them classes; (2) every image must have the same size, where
ImageFolder leaves resizing to a transform (there is none here: an odd size is an error naming the file);
(3) 8-bit images only, where ``pil_loader``'s ``convert("RGB")`` would clip a 16-bit image (refused here);
(4) a folder whose images are all grey loads as one channel, where ``pil_loader`` converts every image to
three equal RGB channels (a folder with any colour image loads as RGB, as ImageFolder does).

**Splits.** Without given splits, one permutation seeded by ``split_seed``: the first ``test``·n samples are
the test split, the next ``val``·n the validation split, the rest the training split (the rule of the shipped
datasets, ``_split.seeded_split``). **Budgets** default to CIFAR-10's (L∞ 8/255, L2 0.5 for small images,
L0 1 pixel); a suite sets its own (``budgets = { linf = ... }``), as it should for data on another scale.
A relative ``path`` is read from the directory dememo-bench runs in. Every error names the file and what is
wrong with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

import attrs
import numpy as np
import torch

import dememo
from dememo.errors import DatasetError
from dememo_plugins.datasets._split import seeded_split

#: torchvision's ``IMG_EXTENSIONS`` (``torchvision/datasets/folder.py``), compared case-insensitively as it does
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _fraction(instance, attribute, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value}")


@attrs.define
class LocalFiles(dememo.DatasetSource):
    """Your own images from an .npz file or a folder of class sub-folders, split by a seeded rule."""

    name: ClassVar[str] = "local-data"
    version: ClassVar[str] = "1"
    budgets: ClassVar[dict[str, float]] = {"linf": 8 / 255, "l2": 0.5, "l0": 1}

    path: str = ""
    num_classes: int = 0  # 0: the largest label + 1
    test: float = attrs.field(default=0.2, validator=_fraction)
    val: float = attrs.field(default=0.1, validator=_fraction)
    split_seed: int = 0
    layout: Literal["auto", "nchw", "nhwc"] = "auto"

    def load(self, data_dir: Path, download: bool) -> dememo.Splits:
        if not self.path:
            raise DatasetError("no path: give the file or folder in the suite (params = { path = \"my.npz\" }) or "
                               "with --set local-data.path=my.npz")
        path = Path(self.path).expanduser()
        if path.is_dir():
            x, y = read_folder(path)
            return self._split(path, to_images(path, x, self.layout), labels(path, y, len(x)), None)
        if not path.is_file():
            where = "" if path.is_absolute() else f" (relative to the working directory: {path.absolute()})"
            raise DatasetError(f"{path}: no such file or folder{where}")
        if path.suffix == ".npy":
            raise DatasetError(f"{path}: an .npy holds one array; save the images and labels together with "
                               "numpy.savez(path, x=..., y=...)")
        return self._from_npz(path)

    def _from_npz(self, path: Path) -> dememo.Splits:
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except ValueError:  # NumPy reads anything it does not recognise as a pickle: refused
            raise DatasetError(f"{path}: not a plain .npz of arrays (reading it would need unpickling, which dememo "
                               "refuses; save arrays with numpy.savez)") from None
        except Exception as exc:  # noqa: BLE001 - whatever is not an .npz
            raise DatasetError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
        if "x" in arrays and "y" in arrays:
            x = to_images(path, arrays["x"], self.layout, "x")
            return self._split(path, x, labels(path, arrays["y"], len(x), "y"), None)
        if all(k in arrays for k in ("x_train", "y_train", "x_test", "y_test")):
            parts = {}
            for part in ("train", "val", "test"):
                if (f"x_{part}" in arrays) != (f"y_{part}" in arrays):
                    raise DatasetError(f"{path}: has {'x' if f'x_{part}' in arrays else 'y'}_{part} but not "
                                       f"{'y' if f'x_{part}' in arrays else 'x'}_{part}; give both or neither")
                if f"x_{part}" in arrays:
                    x = to_images(path, arrays[f"x_{part}"], self.layout, f"x_{part}")
                    parts[part] = (x, labels(path, arrays[f"y_{part}"], len(x), f"y_{part}"))
            return self._split(path, *parts.pop("train"), parts)
        raise DatasetError(f"{path}: expected arrays x and y, or x_train, y_train, x_test and y_test; found "
                           f"{', '.join(sorted(arrays)) or 'none'}")

    def _split(self, path: Path, x: torch.Tensor, y: torch.Tensor,
               given: dict[str, tuple[torch.Tensor, torch.Tensor]] | None) -> dememo.Splits:
        ys = [y] + [v[1] for v in (given or {}).values()]
        if not any(len(t) for t in ys):
            raise DatasetError(f"{path}: holds no samples")
        k = self.num_classes or int(max(int(t.max()) for t in ys if len(t))) + 1
        present = torch.unique(torch.cat(ys))
        if not self.num_classes and len(present) < k:
            missing = sorted(set(range(k)) - set(present.tolist()))
            raise DatasetError(f"{path}: labels must be 0…K−1 with every class present; {len(missing)} of 0…{k - 1} "
                               f"never occur (first: {missing[0]}): relabel, or set num_classes if some classes "
                               "really have no samples")
        bad = [int(t.max()) for t in ys if len(t) and int(t.max()) >= k]
        if bad:
            raise DatasetError(f"{path}: label {bad[0]} is not below num_classes = {k}")
        if k < 2:
            raise DatasetError(f"{path}: needs at least two classes, found {k}")
        shapes = {tuple(x.shape[1:])} | {tuple(v[0].shape[1:]) for v in (given or {}).values()}
        if len(shapes) > 1:
            raise DatasetError(f"{path}: the splits' images differ in shape ({', '.join(map(str, sorted(shapes)))})")
        tag = f"local:{path.name}"
        if given is None:
            splits = seeded_split(x, y, k, test=self.test, val=self.val, seed=self.split_seed, tag=tag)
        else:
            test = dememo.Data.from_tensors(*given["test"], k, tag=f"{tag}:test")
            if "val" in given:
                train = dememo.Data.from_tensors(x, y, k, tag=f"{tag}:train")
                val = dememo.Data.from_tensors(*given["val"], k, tag=f"{tag}:val")
            else:  # the validation split from the training split, by the same seeded rule
                inner = seeded_split(x, y, k, test=0.0, val=self.val, seed=self.split_seed, tag=tag)
                train, val = inner.train, inner.val
            splits = dememo.Splits(train=train, val=val, test=test)
        for part in ("train", "val", "test"):
            if len(getattr(splits, part)) == 0:
                why = f"its x_{part} is empty" if given is not None and part in given else \
                    f"{len(y)} samples; test = {self.test}, val = {self.val}"
                raise DatasetError(f"{path}: the {part} split is empty ({why})")
        return splits


def to_images(path: Path, x: np.ndarray, layout: str = "auto", key: str = "x") -> torch.Tensor:
    """``x`` as float32 N×C×H×W in [0, 1] (see the module for what is accepted)."""
    where = f"{path}: array {key}"
    if x.dtype == np.uint8:
        values = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32) / 255
    elif np.issubdtype(x.dtype, np.floating):
        values = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if values.numel() and not torch.isfinite(values).all():
            raise DatasetError(f"{where} holds NaN or infinite values")
        if values.numel() and (values.min() < 0 or values.max() > 1):
            raise DatasetError(f"{where} has values in [{values.min():.3g}, {values.max():.3g}]; float images must "
                               "be in [0, 1] (or store uint8 0-255)")
    else:
        raise DatasetError(f"{where} is {x.dtype}; store uint8 (0-255) or float in [0, 1]")
    if values.dim() == 3:
        return values.unsqueeze(1)
    if values.dim() != 4:
        raise DatasetError(f"{where} has shape {tuple(x.shape)}; expected N×H×W, N×C×H×W or N×H×W×C")
    first, last = values.shape[1] in (1, 3), values.shape[3] in (1, 3)
    if layout == "auto" and first and last:
        raise DatasetError(f"{where} has shape {tuple(x.shape)}: channels first or last? set layout = "
                           "\"nchw\" or \"nhwc\"")
    if layout == "nhwc" or (layout == "auto" and last):
        return values.permute(0, 3, 1, 2).contiguous()
    if layout == "nchw" or (layout == "auto" and first):
        return values
    raise DatasetError(f"{where} has shape {tuple(x.shape)}: no axis of 1 or 3 channels (set layout if it is "
                       "N×C×H×W or N×H×W×C)")


def labels(path: Path, y: np.ndarray, n: int, key: str = "y") -> torch.Tensor:
    where = f"{path}: array {key}"
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{where} is {y.dtype}; labels must be integers 0…K−1")
    if y.ndim != 1 or len(y) != n:
        raise DatasetError(f"{where} has shape {tuple(y.shape)}; expected ({n},), one label per image")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{where} holds the negative label {int(y.min())}")
    return torch.from_numpy(y.astype(np.int64))


def read_folder(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The images of a folder with one sub-folder per class (sorted names → 0, 1, ...), as uint8 N×H×W(×3)."""
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(f"{path}: an image folder needs one sub-folder per class (at least two), found "
                           f"{len(classes)}")
    found = [(Path(root) / name, k) for k, folder in enumerate(classes)
             for root, _, names in sorted(os.walk(folder, followlinks=True)) for name in sorted(names)
             if name.lower().endswith(IMAGE_SUFFIXES)]
    if not found:
        raise DatasetError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    empty = [folder.name for k, folder in enumerate(classes) if not any(c == k for _, c in found)]
    if empty:  # torchvision's ImageFolder refuses a class without images too
        raise DatasetError(f"{path}: class folder {empty[0]!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for f, _ in found:
        try:
            with Image.open(f) as im:
                if im.mode.startswith(("I", "F")):  # 16/32-bit: converting to 8 bits would clip, not scale
                    raise DatasetError(f"{f}: a {im.mode} image ({'16' if '16' in im.mode else '32'}-bit); convert the "
                                       "folder to 8-bit images, or save an .npz of floats in [0, 1]")
                images.append(im.convert("L") if im.mode in ("1", "L", "LA") else im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"{f}: not a readable image ({exc})") from None
    mode = "L" if all(im.mode == "L" for im in images) else "RGB"
    size = images[0].size
    arrays = []
    for (f, _), im in zip(found, images):
        if im.size != size:
            raise DatasetError(f"{f}: {im.size[0]}×{im.size[1]} pixels, but {found[0][0]} is {size[0]}×{size[1]}; "
                               "every image must have the same size")
        arrays.append(np.asarray(im.convert(mode), dtype=np.uint8))
    return np.stack(arrays), np.array([k for _, k in found], dtype=np.int64)


@dememo.hookimpl
def register_datasets(register):
    register(LocalFiles)
