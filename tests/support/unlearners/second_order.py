"""Helpers shared by unlearners/test_fisher.py, unlearners/test_influence.py."""

from __future__ import annotations

import pytest
import torch

from dememo.testing import tiny_context, tiny_splits, tiny_task


@pytest.fixture(scope="module")
def setting():
    splits = tiny_splits(n_train=48, n_val=12, n_test=12)
    model = tiny_context(splits, budget=None).train(splits.train)
    return splits, model, tiny_task(splits, forget_fraction=0.25, seed=0)


def _flat_grad(model, loss, retain: bool = False) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=retain)]).double()
