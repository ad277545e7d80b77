"""Catch a plugin that modifies, in place, data or models the harness shares with other stages.

Datasets, forget tasks and evaluated models are shared between cells (one copy in memory, reused): an
unlearner that subtracts from ``task.retain.x`` in place, or a metric that runs the evaluated model in
train mode (BatchNorm statistics move), would silently change every later cell's inputs. Copying every
input for every call would cost memory and time on paper-scale data, so the harness instead watches
PyTorch's per-tensor version counter (``Tensor._version``), which every in-place operation on a tensor or
a view of it increments, and fails the stage with a named reason when it moved.

Writes through ``tensor.data`` or a NumPy view bypass that counter, and ``p.data.mul_(0.1)`` is a common
idiom for changing weights. So every tensor also gets a content checksum: its plain sum and its dot product
with fixed pseudo-random weights (so a permutation of rows moves it), computed on the device with one
sync per check. The tensors of one watched value (a model, the splits) are checksummed together, on an
evenly strided sample when they hold more than ``CHECKSUM_MAX`` elements (a CIFAR-sized image split): a bulk
change is seen, a single edited pixel may rely on the counter. A model is also checked for what no tensor shows (:func:`structure`: replaced layers, train mode,
hooks, reassigned attributes), and every watched container for which tensors it holds (a split or a
parameter swapped for another object).

A :class:`Watch` covers what a stage is given up front *and* what it reaches while it runs: the runner adds every stage output it hands out during the block (reference models, cached
predictions, memorization scores, ensembles), so ``ev.reference("original")`` cannot be rewritten either.

When a mutation is caught, the runner drops everything it holds in memory (loaded datasets, stage outputs)
and reloads it from disk, so the damage does not spread to later cells, nor to the same cell's other
metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from dememo import interrupts
from dememo.errors import ContractViolation


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
        if isinstance(getattr(value, "index", None), torch.Tensor):
            out[f"{name}.index"] = value.index
    elif isinstance(getattr(value, "params", None), dict) and isinstance(getattr(value, "buffers", None), dict):  # Ensemble
        for part in ("params", "buffers"):
            for k, t in getattr(value, part).items():
                _collect(f"{name}.{k}", t, out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _collect(f"{name}[{i}]", v, out)
    elif all(hasattr(value, a) for a in ("retain", "forget", "val")):  # Task
        for part in ("retain", "forget", "val"):
            _collect(f"{name}.{part}", getattr(value, part), out)
    elif all(hasattr(value, a) for a in ("train", "val", "test")):  # Splits
        for part in ("train", "val", "test"):
            _collect(f"{name}.{part}", getattr(value, part), out)


#: the elements of one watched value checksummed in full; above it, an evenly strided sample of about this many
CHECKSUM_MAX = 2**22


_WEIGHTS: dict[str, torch.Tensor] = {}


def _weights(n: int, device: torch.device) -> torch.Tensor:
    """The first ``n`` of a fixed vector of pseudo-random weights in [0.5, 1.5) on ``device``."""
    key = str(device)
    if key not in _WEIGHTS or len(_WEIGHTS[key]) < n:
        g = torch.Generator().manual_seed(0)
        _WEIGHTS[key] = (torch.rand(max(n, CHECKSUM_MAX + 4096), generator=g, dtype=torch.float64) + 0.5).to(device)
    return _WEIGHTS[key][:n]


def _flat_sample(t: torch.Tensor, stride: int) -> torch.Tensor:
    """``t`` as a 1-D float64 tensor, every ``stride``-th element."""
    flat = t.detach().reshape(-1)
    if stride > 1:
        flat = flat[::stride]
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    if flat.is_complex():
        flat = torch.view_as_real(flat).reshape(-1)
    return flat.to(torch.float64)


def checksum(tensors: list[torch.Tensor]) -> tuple[tuple[float, float], ...]:
    """(sum, weighted sum) in float64 of ``tensors`` taken together, per device: every element, or an
    evenly strided sample of about ``CHECKSUM_MAX`` when they hold more. One device sync per device."""
    readable = [t for t in tensors if t.numel() and t.device.type != "meta"]
    stride = max(1, -(-sum(t.numel() for t in readable) // CHECKSUM_MAX))
    by_device: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for t in readable:
            by_device.setdefault(str(t.device), []).append(_flat_sample(t, stride))
        stats = []
        for flats in by_device.values():
            flat = torch.cat(flats)
            stats.append(torch.stack([flat.sum(), flat.dot(_weights(flat.numel(), flat.device))]).to("cpu"))
    return tuple((a, b) for a, b in (s.tolist() for s in stats))


def _same(a: tuple[tuple[float, float], ...], b: tuple[tuple[float, float], ...]) -> bool:
    """Equal checksums (NaN equals NaN: a model that already held a NaN has not changed)."""
    return len(a) == len(b) and all(x == y or (x != x and y != y) for p, q in zip(a, b) for x, y in zip(p, q))


#: a module's hook dictionaries: a hook left on a shared model changes what every later reader computes
HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
         "_load_state_dict_pre_hooks")


def modules(name: str, value: Any) -> dict[str, nn.Module]:
    """The models in ``value`` (a model or a list of models), by name. An ensemble's template is a skeleton
    the ensemble code itself reuses (its tensors are the stacked ``params``, watched as tensors)."""
    if isinstance(value, nn.Module):
        return {name: value}
    if isinstance(value, (list, tuple)):
        return {k: m for i, v in enumerate(value) for k, m in modules(f"{name}[{i}]", v).items()}
    return {}


def structure(model: nn.Module) -> tuple:
    """What a model is besides its tensors' values: every submodule's name, class, train/eval mode, hook
    counts and other attributes, and which tensor objects it holds (and whether they require gradients).
    Replacing a layer (``model.fc = ...``) or ``model.forward``, leaving it in train mode, freezing its
    parameters or leaving a hook on it changes this, where no version counter moves."""
    return tuple((n, type(m), m.training, tuple(len(getattr(m, h, None) or ()) for h in HOOKS),
                  tuple(sorted((k, id(v)) for k, v in vars(m).items() if not k.startswith("_") and k != "training")),
                  tuple((k, id(t), t is not None and t.requires_grad) for k, t in m._parameters.items()),
                  tuple((k, id(t)) for k, t in m._buffers.items()))
                 for n, m in model.named_modules())


class Watch:
    """The version counters, content checksums and model structure of the shared objects one plugin call can
    reach: those it is given (:meth:`add` before the call) and those handed to it while it runs (the runner
    adds them)."""

    def __init__(self, who: str):
        self.who = who
        #: id → (name, tensor, version when added)
        self._seen: dict[int, tuple[str, torch.Tensor, int]] = {}
        #: one entry per value added: [name, its new tensors, their checksum when added]
        self._groups: list[list[Any]] = []
        #: id → (name, module, structure when added)
        self._modules: dict[int, tuple[str, nn.Module, tuple]] = {}
        #: id → (name, container, which tensor objects it held when added)
        self._holds: dict[int, tuple[str, Any, dict[str, int]]] = {}

    def add(self, name: str, value: Any, rename: bool = False) -> None:
        """Watch ``value`` from now on (one added again keeps its state, and its first name unless ``rename``)."""
        for n, m in modules(name, value).items():
            if id(m) not in self._modules:
                self._modules[id(m)] = (n, m, structure(m))
            elif rename:
                self._modules[id(m)] = (n, *self._modules[id(m)][1:])
        tensors = watched(**{name: value})
        if not isinstance(value, torch.Tensor) and id(value) not in self._holds:
            self._holds[id(value)] = (name, value, {n: id(t) for n, t in tensors.items()})
        new = []
        for n, t in tensors.items():
            seen = self._seen.get(id(t))
            if seen is None:
                self._seen[id(t)] = (n, t, t._version)
                new.append(t)
            elif rename:
                self._seen[id(t)] = (n, *seen[1:])
                for group in self._groups:
                    if any(g is t for g in group[1]):
                        group[0] = name
        if new:
            self._groups.append([name, new, checksum(new)])

    def changed(self) -> list[str]:
        """What changed since it was added: model structure, held tensors, versions, then values."""
        moved = [f"{n} (its layers, mode, attributes or hooks)" for n, m, st in self._modules.values() if structure(m) != st]
        moved += [f"{n} (which tensors it holds)" for n, v, held in self._holds.values()
                  if {k: id(t) for k, t in watched(**{n: v}).items()} != held]
        moved += [n for n, t, v in self._seen.values() if t._version != v]
        return moved + [f"{n} (its values, written around autograd)" for n, ts, c in self._groups
                        if not moved and not _same(checksum(ts), c)]

    def check(self) -> None:
        """Raise :class:`InputMutated` naming the first tensor modified in place since it was added."""
        changed = self.changed()
        if changed:
            more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            raise InputMutated(f"{self.who} modified its input {changed[0]}{more} in place; the harness shares it "
                               "with other cells: work on a copy (x.clone(), copy.deepcopy(model))")


@contextlib.contextmanager
def unchanged(who: str, shared: dict[str, Any], active: list[Watch] | None = None) -> Iterator[Watch]:
    """Raise ContractViolation naming the first thing ``who`` modified in place inside the block among
    ``shared`` (name → model, data, task, splits or tensor). With ``active`` (the runner's stack of open
    watches), the watch is on it for the block, so what the runner hands out meanwhile is watched too."""
    watch = Watch(who)
    for name, value in shared.items():
        if value is not None:
            watch.add(name, value)
    if active is not None:
        active.append(watch)
    try:
        yield watch
    except BaseException as exc:  # a plugin that fails after modifying shared data still modified it
        if not (isinstance(exc, KeyboardInterrupt) and interrupts.from_user(exc)) and watch.changed():
            try:
                watch.check()
            except InputMutated as mutated:
                raise mutated from exc
        raise
    finally:
        if active is not None:
            active.remove(watch)
    watch.check()
