"""Helpers shared by attacks/test_none.py, unlearners/test_retrain.py."""

from __future__ import annotations

import torch


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
