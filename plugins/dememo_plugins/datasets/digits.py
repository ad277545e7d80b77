"""``digits``: scikit-learn's 8×8 handwritten digits (UCI optdigits test set; 1,797 images, 10 classes).

Real data shipped inside scikit-learn, so it needs no download. Pixels are integers 0..16, scaled to
[0, 1] by /16, giving a quantisation step of 1/16 = 0.0625. Fixed, seeded split: 30 % test, 10 %
validation, 60 % train (1,078 / 180 / 539).

Budget choice. The papers' L∞ 8/255 is *below one quantisation step* here, so it would not be a visible
but small change, it would be sub-quantisation noise. dememo uses L∞ = 0.25 (4 of the 16 grey levels),
the smallest radius at which a class-wise shortcut measurably hurts a small MLP on this data (at 0.25
class-wise random noise still leaves it well above chance, and sample-wise EM barely moves it): digits
are close to linearly separable, so the true features are learned as fast as any shortcut.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import attrs
import torch

import dememo


@attrs.define
class Digits(dememo.DatasetSource):
    """scikit-learn's 8×8 handwritten digits: 1,797 real images, 10 classes, no download."""

    name: ClassVar[str] = "digits"
    version: ClassVar[str] = "1"
    budgets: ClassVar[dict[str, float]] = {"linf": 0.25}
    split_seed: int = 0

    def load(self, data_dir: Path, download: bool) -> dememo.Splits:
        from sklearn.datasets import load_digits

        raw = load_digits()
        x = torch.tensor(raw.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(raw.target, dtype=torch.int64)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.split_seed))
        n_test, n_val = round(0.3 * len(y)), round(0.1 * len(y))
        parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
        made = {k: dememo.Data.from_tensors(x[i], y[i], 10, tag=f"digits:{k}") for k, i in parts.items()}
        return dememo.Splits(train=made["train"], val=made["val"], test=made["test"])


@dememo.hookimpl
def register_datasets(register):
    register(Digits)
