"""Helpers shared by unlearners/test_certified_newton.py, unlearners/test_eu_k.py, unlearners/test_last_k_family.py."""

from __future__ import annotations

import torch
from torch import nn

from dememo.testing import tiny_context


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _names(model: nn.Module, modules: list[nn.Module]) -> set[str]:
    chosen = {id(m) for m in modules}
    return {name for name, m in model.named_modules() if id(m) in chosen}


def _trained(model: nn.Module, splits, seed: int = 0) -> nn.Module:
    tiny_context(splits, seed=seed, budget=None).fit(model, splits.train, epochs=3)
    return model
