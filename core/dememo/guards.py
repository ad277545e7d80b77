"""Catch a plugin that modifies, in place, data or models the harness shares with other stages.

Datasets, forget tasks and evaluated models are shared between cells (one copy in memory, reused): an
unlearner that subtracts from ``task.retain.x`` in place, or a metric that runs the evaluated model in
train mode (BatchNorm statistics move), would silently change every later cell's inputs. Copying every
input for every call would cost memory and time on paper-scale data, so the harness instead watches
PyTorch's per-tensor version counter (``Tensor._version``), which every in-place operation on a tensor or
a view of it increments, and fails the stage with a named reason when it moved.

What it does not see: writes through ``tensor.data`` or a NumPy view, which bypass autograd's counter.
Those are deliberate work-arounds, not accidents.

When a mutation is caught, the runner drops everything it holds in memory (loaded datasets, stage outputs)
and reloads it from disk, so the damage does not spread to later cells.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .errors import ContractViolation


class InputMutated(ContractViolation):
    """A plugin modified shared data or a shared model in place (the harness must drop what it holds)."""


def watched(**named: Any) -> dict[str, torch.Tensor]:
    """Flatten data splits, tasks, models and tensors into ``{"task.retain.x": tensor, ...}``."""
    out: dict[str, torch.Tensor] = {}
    for name, value in named.items():
        _collect(name, value, out)
    return out


def _collect(name: str, value: Any, out: dict[str, torch.Tensor]) -> None:
    if value is None:
        return
    if isinstance(value, torch.Tensor):
        out[name] = value
    elif isinstance(value, nn.Module):
        for k, t in value.state_dict(keep_vars=True).items():
            out[f"{name}.{k}"] = t
    elif hasattr(value, "x") and hasattr(value, "y") and isinstance(getattr(value, "x"), torch.Tensor):  # Data
        out[f"{name}.x"], out[f"{name}.y"] = value.x, value.y
    elif all(hasattr(value, a) for a in ("retain", "forget", "val")):  # Task
        for part in ("retain", "forget", "val"):
            _collect(f"{name}.{part}", getattr(value, part), out)
    elif all(hasattr(value, a) for a in ("train", "val", "test")):  # Splits
        for part in ("train", "val", "test"):
            _collect(f"{name}.{part}", getattr(value, part), out)


@contextlib.contextmanager
def unchanged(who: str, tensors: dict[str, torch.Tensor]) -> Iterator[None]:
    """Raise ContractViolation naming the first tensor ``who`` modified in place inside the block."""
    before = {name: t._version for name, t in tensors.items()}
    yield
    changed = [name for name, t in tensors.items() if t._version != before[name]]
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise InputMutated(f"{who} modified its input {changed[0]}{more} in place; the harness shares it with "
                                "other cells: work on a copy (x.clone(), copy.deepcopy(model))")
