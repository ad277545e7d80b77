"""Helpers shared by scorers/test_holdout_retraining.py, scorers/test_learning_curve.py, scorers/test_memorization.py."""

from __future__ import annotations

import pytest
import torch

import dememo
from dememo.testing import tiny_context, tiny_splits


@pytest.fixture(scope="module")
def tiny_run():
    """Tiny data with every tenth label flipped, its context, and the per-epoch logits of standard training
    on it (the run the one-run proxies read), recorded here with the harness's own loop."""
    splits = tiny_splits(n_train=90)
    y = splits.train.y.clone()
    y[::10] = (y[::10] + 1) % splits.num_classes
    data = dememo.Data.from_tensors(splits.train.x, y, splits.num_classes, tag="flipped")
    ctx = tiny_context(splits, budget=None)
    local = ctx.for_training_on(data)
    logits: list[torch.Tensor] = []
    local.fit(local.new_model(), data, after_epoch=lambda m, epoch: logits.append(ctx.predict(m, data.x).double()))
    return data, ctx, logits
