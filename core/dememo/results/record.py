"""A cell's record: what ran (track, dataset, plugins, seed, key), how it ended and what it measured.

:class:`CellRecord` is the typed form of one entry of ``results.json``'s ``cells`` (and of a
``cells/<key>.json`` file). Readers use its attributes instead of string keys; :meth:`CellRecord.to_json`
and :meth:`CellRecord.from_json` convert at the file boundary, and ``from_json(d).to_json() == d`` for every
record dememo writes. Plugin labels a hand-made record leaves out read as None. Facts only some cells record
(``series``, ``budget`` on poisoned cells, ``forget_size`` on unlearning cells, ...) are :data:`UNSET` when
absent and left out of the JSON (``budget`` present as ``null`` stays ``None``: files dememo wrote differ
there, so both survive a round trip). Keys a newer dememo adds are kept in ``extra``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import attrs


class _Unset:
    """The value of a field the record does not carry (absent from its JSON)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

Status = Literal["ok", "failed", "skipped"]


@attrs.frozen
class CellError:
    """Why a cell failed: the stage (``train``, ``metric:<name>``, ...), a one-paragraph message naming the
    plugin, and the traceback (empty when the harness itself refused)."""

    stage: str
    message: str
    traceback: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "message": self.message, "traceback": self.traceback}


def _opt() -> Any:
    return attrs.field(default=UNSET, kw_only=True)


@attrs.define(eq=True)
class CellRecord:
    track: str
    dataset: str
    method: str  # the row label: the poisoner (with its learner-side attack) or the unlearner
    attack: str  # the model-stage attack's label, ``none`` when unattacked
    seed: int
    key: str  # digest of the cell's configuration
    status: Status = "ok"
    metrics: dict[str, float | None] = attrs.field(factory=dict)
    # plugin labels and the configuration (None where the cell has no such plugin; dememo writes them all,
    # hand-made results may leave them out)
    architecture: str | None = attrs.field(default=None, kw_only=True)
    poisoner: str | None = attrs.field(default=None, kw_only=True)
    train_attack: str | None = attrs.field(default=None, kw_only=True)
    unlearner: str | None = attrs.field(default=None, kw_only=True)
    forget: str | None = attrs.field(default=None, kw_only=True)
    selection: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    params: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    error: CellError | None = attrs.field(default=None, kw_only=True)
    # what only some cells record (bundles leave the timings out)
    timings: dict[str, dict[str, Any]] = _opt()
    series: dict[str, dict[str, Any]] = _opt()
    budget: float | None = _opt()
    poison_subset: Any = _opt()
    interplay_target: str | None = _opt()
    unlearn_record: dict[str, Any] | None = _opt()
    forget_size: int = _opt()
    draws: int = _opt()
    #: the model the cell evaluates before any model-stage attack (the trained one on the unlearnability
    #: track, else the unlearned one): its stage key in the run's cache, the stage, and what building its
    #: architecture needs (``input_shape``, ``num_classes``); read by ``Results.model``
    model: dict[str, Any] = _opt()
    extra: dict[str, Any] = attrs.field(factory=dict, kw_only=True)  # keys this version does not know

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def fail(self, stage: str, message: str, traceback: str = "") -> None:
        self.status = "failed"
        self.error = CellError(stage, message, traceback)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in attrs.fields(CellRecord):
            value = getattr(self, f.name)
            if f.name == "extra" or value is UNSET:
                continue
            out[f.name] = value.to_json() if isinstance(value, CellError) else value
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellRecord:
        """The record of a cell entry that passed ``results.shape_problem`` (required keys present)."""
        known = {f.name for f in attrs.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        error = kwargs.get("error")
        if isinstance(error, dict):
            kwargs["error"] = CellError(str(error.get("stage", "")), str(error.get("message", "")),
                                        str(error.get("traceback", "")))
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})


def records(cells: Iterable[dict[str, Any]]) -> list[CellRecord]:
    """Cell entries of a results document (checked by ``results.shape_problem``) as typed records."""
    return [CellRecord.from_json(c) for c in cells]
