"""A model unlearned outside dememo, evaluated as a row of its own (``dememo-bench eval``).

The user's weights enter a run as the unlearning stage of an :class:`ExternalModel`: a harness facility in
the unlearner family's shape, never registered as a plugin, that returns the given weights whatever model
and task it is handed. Its cache key holds the weights' SHA-256 (not their path), so the same file
evaluated twice is computed once and a changed file is a new row. Everything after the unlearning stage —
model-stage attacks, metrics, the paired retrain and the other references — is the suite's, exactly as for
any unlearner's cells (:meth:`dememo.planning.planner.Planner.unlearning_cells`), except the metrics that
re-run the unlearner on shadow models (U-LiRA, forget quality: ``Metric.replays``), which an external model
cannot serve.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import attrs
import torch
from torch import nn

from dememo.errors import UserError
from dememo.families import Unlearner
from dememo.planning.planner import Cell, Configured, Filters, Planner


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state(path: Path | str) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (a ``torch.save``'d state dict, or a checkpoint dict holding one under
    ``state_dict``), read without running pickled code; one-line errors say what the file is instead."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--model {path}: no such file (give the state dict your unlearning saved with torch.save)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"--model {path} is not a torch state dict that loads safely (torch.load with "
                        "weights_only=True refused it: a whole pickled module, or not a torch file); save "
                        "model.state_dict() with torch.save") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # a checkpoint that wraps its state dict
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise UserError(f"--model {path} holds {type(loaded).__name__}, not a state dict of tensors; save "
                        "model.state_dict() with torch.save")
    return {str(k).removeprefix("module."): v for k, v in loaded.items()}  # DataParallel's prefix


def check_state(state: dict[str, torch.Tensor], template: nn.Module, where: str) -> None:
    """``state`` must fit ``template`` exactly (names, shapes, finite floats); one line naming the first misfit."""
    expected = template.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise UserError(f"{where} does not fit the export's architecture: "
                        + (f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}")
                        + f" ({len(missing)} missing, {len(extra)} unexpected of {len(expected)} tensors); "
                        "unlearn the exported model without changing its layers")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"{where}: tensor {k!r} has shape {tuple(state[k].shape)}, the export's architecture "
                            f"has {tuple(v.shape)}")
        if state[k].is_floating_point() and not torch.isfinite(state[k]).all():
            raise UserError(f"{where}: tensor {k!r} holds NaN or infinite values")


@attrs.define
class ExternalModel(Unlearner):
    """The weights of a model unlearned outside dememo (``dememo-bench eval``): returned as the unlearned
    model of every cell it is in."""

    name: ClassVar[str] = "external"
    version: ClassVar[str] = "1"
    reads_forget: ClassVar[bool] = False

    sha256: str
    path: str = ""

    def params(self) -> dict[str, Any]:
        return {"sha256": self.sha256}  # the key is the weights, wherever the file lies

    def unlearn(self, model: nn.Module, task: Any, ctx: Any) -> nn.Module:
        if file_sha256(Path(self.path)) != self.sha256:
            raise UserError(f"{self.path} changed while it was evaluated (its SHA-256 differs); run eval again")
        model.load_state_dict(read_state(self.path))
        return model


def configured(path: Path | str, name: str) -> tuple[Configured, dict[str, Any]]:
    """The row of the weights in ``path``, labelled ``name``, and how its cells record their selection."""
    path = Path(path).absolute()
    sha = file_sha256(path)
    row = Configured("unlearner", ExternalModel(sha256=sha, path=str(path)), alias=name)
    return row, {"source": "external", "model_sha256": sha, "params": []}


def external_cells(planner: Planner, spec: dict[str, Any], filters: Filters, seeds: int | None) -> list[Cell]:
    """The cells of an external model (``spec``: ``path``, ``name`` and the ``seed`` it was exported at)."""
    row, selection = configured(spec["path"], spec["name"])
    cells = planner.unlearning_cells(row, selection, filters, seeds, replays=False)
    return [c for c in cells if c.seed == spec["seed"]]
