"""The ``owner-share`` metric (plugins/dememo_plugins/metrics/owner_share.py): behaviour tests and reference checks.

Reference check of the interplay track's ``owner-share`` metric against the SoK's definition, with models
whose predictions are fixed so the accuracies are known exactly.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.data import Data
from dememo.evaluation import Evaluation
from dememo.testing import tiny_context, tiny_splits
from dememo_plugins.metrics.owner_share import OwnerShare


class Lookup(torch.nn.Module):
    """Predicts ``answers[i]`` for the i-th image (images carry their row number in pixel 0)."""

    def __init__(self, answers: torch.Tensor, k: int):
        super().__init__()
        self.register_buffer("logits", torch.nn.functional.one_hot(answers, k).float())

    def forward(self, x):
        return self.logits[x.flatten(1)[:, 0].round().long()]


@pytest.mark.reference("metric", "owner-share", source="paper: SoK: Unlearnability and Unlearning for Model "
                       "Dememorization (arXiv 2605.11592), interplay: accuracy on the owner's clean data after "
                       "vs before unlearning")
@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(1, 30), k=st.integers(2, 5))
def test_owner_share_is_clean_share_accuracy_and_its_change_from_the_mixture_model(data, n, k):
    y = torch.tensor(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    after = torch.tensor(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    before = torch.tensor(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    x = torch.zeros(n, 1, 1, 2)
    x[:, 0, 0, 0] = torch.arange(n).float()
    share = Data.from_tensors(x, y, k, tag="share")
    splits = tiny_splits(num_classes=k)
    ev = Evaluation(model=Lookup(after, k), splits=splits, track="interplay", owner_share=share,
                    references=lambda name: Lookup(before, k))
    out = OwnerShare().compute(ev, tiny_context(splits))
    acc_after = sum(int(a == t) for a, t in zip(after.tolist(), y.tolist(), strict=True)) / n
    acc_before = sum(int(b == t) for b, t in zip(before.tolist(), y.tolist(), strict=True)) / n
    assert out["share_clean_acc"] == pytest.approx(acc_after)
    # a difference of two float32 accuracies: its error is absolute (~1e-7), not relative to a small gain
    assert out["share_clean_gain"] == pytest.approx(acc_after - acc_before, abs=1e-6)


def test_owner_share_refuses_cells_without_a_share():
    splits = tiny_splits()
    with pytest.raises(ValueError, match="interplay cells only"):
        OwnerShare().compute(Evaluation(model=torch.nn.Identity(), splits=splits, track="unlearning"),
                             tiny_context(splits))
