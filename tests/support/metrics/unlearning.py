"""Helpers shared by attacks/test_prototype_relearn.py, attacks/test_relearn.py, metrics/test_avg_gap.py, metrics/test_clean_accuracy.py, metrics/test_mia_entropy.py, metrics/test_ou_at_eps.py, metrics/test_peak_accuracy.py, metrics/test_relearn_time.py, metrics/test_residual_knowledge.py, metrics/test_tow.py, metrics/test_unlearning_accuracy.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

from dememo.data import Data
from dememo.evaluation import Evaluation


class Table(nn.Module):
    """Logits = ``scale`` · the image's pixels (N×1×1×K images give K logits). In train mode the logits are
    rolled by one class, so a metric that forgets evaluation mode reads the wrong predictions."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.dummy = nn.Parameter(torch.zeros(()))  # a parameter, so the harness's helpers see a module

    def forward(self, x):
        z = self.scale * x.flatten(1) + 0 * self.dummy
        return z.roll(1, dims=1) if self.training else z


def data(x, y, k: int, tag: str) -> Data:
    x = torch.as_tensor(x, dtype=torch.float32)
    return Data.from_tensors(x.view(len(x), 1, 1, -1), torch.as_tensor(y, dtype=torch.int64), k, tag)


def onehot_images(preds, k: int) -> torch.Tensor:
    """Images whose Table logits are one-hot at ``preds`` (argmax = the prediction)."""
    return F.one_hot(torch.as_tensor(preds, dtype=torch.int64), k).float()


def stub_evaluation(values: dict[str, dict[str, dict[str, float]]]) -> Evaluation:
    """An Evaluation whose other metrics return fixed ``values[on][name]`` (on = "model" or "retrained")."""
    return Evaluation(model=Table(), splits=None, track="unlearning", metric=lambda name, on="model": values[on][name])


def loop_accuracy(preds, labels) -> float:
    """SalUn's ``validate``: the share of samples whose arg-max prediction equals the label, model in eval mode."""
    hits = 0
    for p, label in zip(preds, labels):
        hits += int(p == label)
    return hits / len(labels)


pairs = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=30)


fractions = st.floats(0, 1)
