"""What a metric sees: ``ev`` (binding API).

``ev.model`` is the model under evaluation (after any model-stage attack). References are computed
lazily and cached: ``ev.reference("original")`` (trained on the full training set),
``ev.reference("retrained")`` (trained on the retain set: the paired oracle of the same seed and split;
on the interplay track ``original`` is the model trained on the poisoned mixture)
and ``ev.reference("clean")`` (trained on the clean, un-poisoned training set). A metric must declare the
references it reads in ``Metric.needs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import torch
from torch import nn

from .data import Data, Splits, Task
from .training import predict

if TYPE_CHECKING:
    from .ensemble import Ensemble


@attrs.define(eq=False)
class Evaluation:
    model: nn.Module
    splits: Splits
    track: str
    task: Task | None = None
    #: the training split the evaluated model learned from (poisoned on the unlearnability track)
    train_data: Data | None = None
    #: per-epoch records of the standard training that produced the model (None if not available)
    history: list[dict[str, float]] | None = None
    cell: dict[str, Any] = attrs.field(factory=dict)
    #: run time (seconds, as first computed) of the stages behind the evaluated model; on the unlearning
    #: track ``unlearn_seconds`` and ``retrain_seconds`` (standard training on the retain set, same seed)
    costs: dict[str, float] = attrs.field(factory=dict)
    #: interplay track: the data owner's share of the training set as *clean* images (what the poison hid;
    #: the model trained on, and the unlearner sees, the poisoned versions); None on the other tracks
    owner_share: Data | None = None
    _replay: Callable[[Ensemble, Data, torch.Tensor], Ensemble] | None = None
    _references: Callable[[str], nn.Module] | None = None
    _metric: Callable[[str, str], dict[str, float]] | None = None
    _probs: dict[tuple[int, str], torch.Tensor] = attrs.field(factory=dict)

    def reference(self, name: str) -> nn.Module:
        """A reference model: ``original``, ``retrained`` or ``clean`` (declare it in ``Metric.needs``)."""
        if self._references is None:
            raise RuntimeError("this evaluation has no reference models")
        return self._references(name)

    def metric(self, name: str, on: str = "model") -> dict[str, float]:
        """Another metric's values, on the model under evaluation or on a reference (cached).

        Declare it in ``Metric.uses``.
        """
        if self._metric is None:
            raise RuntimeError("this evaluation cannot compute other metrics")
        return self._metric(name, on)

    def unlearn_many(self, ensemble: Ensemble, data: Data, forget: torch.Tensor) -> Ensemble:
        """The cell's unlearner replayed on every member of ``ensemble`` (from ``ctx.train_many`` on
        ``data``): member ``k`` forgets the samples it trained on that ``forget[k]`` marks (a K×N bool mask
        over ``data``) and keeps the rest of its subset as its retain set (validation split as usual).
        Each replay is a cached unlearning stage, shared by every metric and cell that asks for it. For
        metrics that compare many unlearned models with models that never saw the data (U-LiRA, forget
        quality); unlearning-track cells only."""
        if self._replay is None:
            raise RuntimeError("this evaluation cannot replay its unlearner (not an unlearning cell run by the harness)")
        return self._replay(ensemble, data, forget)

    def probs(self, model: nn.Module, data: Data) -> torch.Tensor:
        """Softmax probabilities of ``model`` on ``data`` (memoised per model object and data)."""
        key = (id(model), data.fingerprint)
        if key not in self._probs:
            self._probs[key] = predict(model, data.x).softmax(dim=1)
        return self._probs[key]

    def accuracy(self, model: nn.Module, data: Data) -> float:
        if len(data) == 0:
            return float("nan")
        return float((self.probs(model, data).argmax(1) == data.y).float().mean())
