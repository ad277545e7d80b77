"""``digits``: scikit-learn's 8×8 handwritten digits (UCI optdigits test set; 1,797 images, 10 classes).

Real data shipped inside scikit-learn, so it needs no download (read from the CSV file scikit-learn ships,
as ``sklearn.datasets.load_digits`` reads it: identical arrays, checked against it, without importing
scikit-learn at every start). Pixels are integers 0..16, scaled to
[0, 1] by /16, giving a quantisation step of 1/16 = 0.0625. Fixed, seeded split: 30 % test, 10 %
validation, 60 % train (1,078 / 180 / 539).

Budget choice. The papers' L∞ 8/255 is *below one quantisation step* here, so it would not be a visible
but small change, it would be sub-quantisation noise. dememo uses L∞ = 0.25 (4 of the 16 grey levels),
the smallest radius at which a class-wise shortcut measurably hurts a small MLP on this data (at 0.25
class-wise random noise still leaves it well above chance, and sample-wise EM barely moves it): digits
are close to linearly separable, so the true features are learned as fast as any shortcut.

L2 and L0 budgets (for LSP, AR and OPS). An L2 radius is spread over all C·H·W = 64 values, so its
per-value root mean square (RMS) is ε/8. CIFAR-10's L2 = 1.0 over 3,072 values is an RMS of 0.018, a
little over half its L∞ radius of 8/255 = 0.031; copying that ratio here gives RMS 0.125, half the L∞
radius of 0.25 (two grey levels), hence L2 = 0.125 · √64 = 1.0 — comparably visible to the L∞ budget,
and still above the quantisation step. (Copying CIFAR-10's RMS of 0.018 instead would again be below
one grey level, the problem the L∞ choice above avoids.) L0 = 1 pixel, OPS's budget.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np
import torch

import dememo
from dememo_plugins.datasets._split import seeded_split


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``sklearn.datasets.load_digits`` returns them (images 1797×8×8 of grey levels 0-16,
    targets), read from the CSV file scikit-learn ships, as it reads it, without importing scikit-learn
    (1.4 s of every run's start, in every worker). Where that file is not found, load_digits itself."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec and \
        spec.submodule_search_locations else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        raw = load_digits()
        return raw.images, raw.target
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int, copy=False)


@attrs.define
class Digits(dememo.DatasetSource):
    """scikit-learn's 8×8 handwritten digits: 1,797 real images, 10 classes, no download."""

    name: ClassVar[str] = "digits"
    version: ClassVar[str] = "1"
    budgets: ClassVar[dict[str, float]] = {"linf": 0.25, "l2": 1.0, "l0": 1}
    split_seed: int = 0

    def load(self, data_dir: Path, download: bool) -> dememo.Splits:
        images, target = digits_arrays()
        x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(target, dtype=torch.int64)
        return seeded_split(x, y, 10, test=0.3, val=0.1, seed=self.split_seed, tag="digits")


@dememo.hookimpl
def register_datasets(register):
    register(Digits)
