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

from dememo.data import Data, Splits, Task
from dememo.training import predict

if TYPE_CHECKING:
    from dememo.ensemble import Ensemble


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
    #: memoised probabilities: (id(model), data fingerprint) → (a weak reference to the model, probabilities);
    #: the reference tells a live model from a later one that reuses a collected model's id
    _probs: dict[tuple[int, str], tuple[Any, torch.Tensor]] = attrs.field(factory=dict)
    #: called with every memoised tensor handed out, so the harness can watch it (``guards.Watch.add``)
    _share: Callable[[str, Any], None] | None = None
    #: keys this view computed itself (``merge`` shares them with the cell's later metrics)
    _computed: set[tuple[int, str]] = attrs.field(factory=set)

    def view(self, share: Callable[[str, Any], None] | None = None) -> Evaluation:
        """This evaluation as one metric sees it: its own copies of the plain-Python fields (history, cell,
        costs) and of the memo (its tensors shared with the cell's other metrics and reported to ``share``)."""
        import copy

        return attrs.evolve(self, history=copy.deepcopy(self.history), cell=copy.deepcopy(self.cell),
                            costs=dict(self.costs), share=share, probs=dict(self._probs), computed=set())

    def merge(self, view: Evaluation) -> None:
        """Share the predictions ``view`` computed (after its metric passed every check) with later metrics."""
        self._probs.update({k: view._probs[k] for k in view._computed if k in view._probs})

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
        import weakref

        key = (id(model), data.fingerprint)
        held = self._probs.get(key)
        if held is None or held[0]() is not model:
            held = self._probs[key] = (weakref.ref(model), predict(model, data.x).softmax(dim=1))
            self._computed.add(key)
        if self._share is not None:
            self._share("ev.probs", held[1])
        return held[1]

    def accuracy(self, model: nn.Module, data: Data) -> float:
        if len(data) == 0:
            return float("nan")
        return float((self.probs(model, data).argmax(1) == data.y).float().mean())
