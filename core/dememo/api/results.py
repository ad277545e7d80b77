"""A run's results in Python: the cells as typed records, one leaderboard table at a time, flat records for a
data frame, the model a cell evaluated, and the files a run writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dememo import plugins
from dememo.api.options import default_cache_dir
from dememo.board import leaderboard
from dememo.board.writer import write_outputs
from dememo.engine.cache import Store
from dememo.errors import StorageError, UserError, did_you_mean, storage_advice
from dememo.params import build
from dememo.results import CellRecord, is_partial, load_results as read_results, records


def build_model(spec: dict[str, Any], input_shape: Any, num_classes: int) -> nn.Module:
    """A freshly built model of architecture ``spec`` (``{"name", "params"}``, as results and exports record
    it), without moving the global RNG; needs the architecture plugin installed."""
    cls = plugins.get_registry().get("architecture", spec.get("name", "?"))
    arch = build(cls, dict(spec.get("params") or {}), f"$.{spec.get('name')}")
    with torch.random.fork_rng(devices=[]):
        return arch.build(tuple(input_shape), int(num_classes))  # type: ignore[attr-defined]


class Table:
    """One leaderboard table: rows are methods, with the header and cells as the terminal shows them
    (``rows``) and the numbers behind them (``values``: method → column → mean over seeds)."""

    def __init__(self, title: str, header: list[str], rows: list[list[str]], values: dict[str, dict[str, float]],
                 caption: str | None = None):
        self.title, self.header, self.rows, self.values, self.caption = title, header, rows, values, caption

    def __str__(self) -> str:
        from tabulate import tabulate

        return f"{self.title}\n" + tabulate(self.rows, headers=self.header, tablefmt="simple", disable_numparse=True)

    def _repr_markdown_(self) -> str:
        from tabulate import tabulate

        head, rows = leaderboard._escaped_table(self.header, self.rows)
        return f"**{leaderboard.md_escape(self.title)}**\n\n" + tabulate(rows, headers=head, tablefmt="github",
                                                                        disable_numparse=True)

    def __repr__(self) -> str:
        return f"<Table {self.title!r}: {len(self.rows)} rows × {len(self.header)} columns>"


class Results:
    """The results of a run (``dememo.run``) or of a results directory (``dememo.load_results``).

    ``data`` is the ``results.json`` document; ``cells`` its records. ``cache_dir`` is where :meth:`model`
    looks for the cells' models (default: the run's cache, else ``$DEMEMO_CACHE_DIR`` or ``~/.cache/dememo``).
    """

    def __init__(self, data: dict[str, Any], out: Path | None = None, cache_dir: Path | str | None = None):
        self.data = data
        self.out = out
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cells: list[CellRecord] = records(data["cells"])

    # -- what it holds -----------------------------------------------------------------------------

    @property
    def suite(self) -> str:
        return str(self.data.get("suite", {}).get("name", "?"))

    @property
    def partial(self) -> bool:
        """Whether the run stopped before its end (the leaderboards say "PARTIAL: n of m cells")."""
        return is_partial(self.data)

    @property
    def failed(self) -> list[CellRecord]:
        return [c for c in self.cells if c.status == "failed"]

    def __len__(self) -> int:
        return len(self.cells)

    def __iter__(self) -> Iterator[CellRecord]:
        return iter(self.cells)

    def __repr__(self) -> str:
        partial = ", PARTIAL" if self.partial else ""
        return f"<Results suite {self.suite!r}: {len(self.cells)} cells, {len(self.failed)} failed{partial}>"

    def __str__(self) -> str:
        return leaderboard.render(self.data, "simple")

    def _repr_markdown_(self) -> str:
        return leaderboard.render(self.data, "github")

    # -- tables ------------------------------------------------------------------------------------

    def tables(self) -> list[tuple[str, str, str | None]]:
        """The (track, dataset, forget set) of every table, in the leaderboard's order."""
        return [key for key, _ in leaderboard.sorted_groups(self.data)]

    def table(self, track: str, dataset: str, forget: str | None = None) -> Table:
        """The main table of one track, dataset and forget set (None on the unlearnability track), as the
        leaderboard prints it, with the means behind it."""
        groups = leaderboard.groups(self.data)
        cells = groups.get((track, dataset, forget))
        if cells is None:
            known = [f"({t}, {d}, {f})" for t, d, f in self.tables()]
            raise UserError(f"no table ({track}, {dataset}, {forget}){did_you_mean(f'({track}, {dataset}, {forget})', known)}; "
                            f"tables: {', '.join(known) or 'none'}")
        main = leaderboard.build_tables(self.data, cells)[0]
        partial = leaderboard.partial_note(self.data)
        values: dict[str, dict[str, float]] = {}
        for c in cells:
            if c.attack != "none":
                continue
            for col, v in c.metrics.items():
                if v is not None:
                    values.setdefault(c.method, {}).setdefault(col, []).append(v)  # type: ignore[arg-type, union-attr]
        means = {m: {col: sum(vs) / len(vs) for col, vs in cols.items()} for m, cols in values.items()}  # type: ignore[union-attr, arg-type]
        title = leaderboard.title(track, dataset, forget, cells)
        return Table(f"{partial}\n{title}" if partial else title, main["header"], main["rows"], means)

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per cell — what it is (track, dataset, forget, method, poisoner, train_attack,
        unlearner, attack, seed, status, key) and one entry per metric column — ready for
        ``pandas.DataFrame(results.to_records())``."""
        out = []
        for c in self.cells:
            row: dict[str, Any] = {"track": c.track, "dataset": c.dataset, "forget": c.forget, "method": c.method,
                                   "poisoner": c.poisoner, "train_attack": c.train_attack, "unlearner": c.unlearner,
                                   "attack": c.attack, "seed": c.seed, "status": c.status, "key": c.key}
            row.update({col: v for col, v in c.metrics.items() if col not in row})
            out.append(row)
        return out

    # -- models ------------------------------------------------------------------------------------

    def cell(self, which: CellRecord | str | int) -> CellRecord:
        """A cell by record, by key (or a unique prefix of one) or by position."""
        if isinstance(which, CellRecord):
            return which
        if isinstance(which, int) and not isinstance(which, bool):
            if not -len(self.cells) <= which < len(self.cells):
                raise UserError(f"no cell {which}: these results hold {len(self.cells)} cells (0…{len(self.cells) - 1})")
            return self.cells[which]
        if isinstance(which, str):
            found = [c for c in self.cells if c.key.startswith(which)] if which else []
            if len(found) == 1:
                return found[0]
            raise UserError(f"{'no' if not found else len(found)} cells have a key starting {which!r}; give more of the key")
        raise UserError(f"a cell is a record, a key or a position, not {type(which).__name__}")

    def model(self, which: CellRecord | str | int, device: str = "cpu") -> nn.Module:
        """The model cell ``which`` evaluated, before any model-stage attack (the trained model on the
        unlearnability track, else the unlearned one), loaded from the stage cache in eval mode. Needs the
        architecture plugin installed and the cache the run used."""
        cell = self.cell(which)
        ref = cell.model or None
        if not ref:
            raise UserError(f"cell {cell.key[:12]} ({cell.method}) records no model: it failed before one was made, or "
                            "its results come from a dememo without model references (run it again)")
        spec = (cell.params or {}).get("data", {}).get("architecture") or {}
        model = build_model(spec, ref["input_shape"], ref["num_classes"])
        try:
            hit = Store(self.cache_dir).get(ref["key"])  # a permission problem is the store's one-line StorageError
        except OSError as exc:
            raise UserError(f"cannot read the cache at {self.cache_dir}: {storage_advice(exc, '--cache-dir')}") from None
        if hit is None:
            raise UserError(f"the model of cell {cell.key[:12]} ({cell.method}) is not in the cache at {self.cache_dir}; "
                            "give the run's cache_dir, or run the suite again to recompute it")
        model.load_state_dict(hit[1]["models"][0])
        try:
            target = torch.device(device)
        except RuntimeError:
            raise UserError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
        return model.to(target).eval()

    # -- files -------------------------------------------------------------------------------------

    def save(self, out: Path | str) -> Path:
        """Write results.json and the leaderboards (md, csv, json, html) to ``out``; returns the directory
        written (``out/partial`` for partial results when ``out`` holds complete ones)."""
        out = Path(out).absolute()
        try:
            out.mkdir(parents=True, exist_ok=True)
            return write_outputs(out, self.data, self.suite)
        except OSError as exc:
            raise StorageError(f"cannot write results to {out}: {storage_advice(exc, 'directory')}") from None


def load_results(path: Path | str, cache_dir: Path | str | None = None) -> Results:
    """The results in ``path`` (a results directory or its results.json), checked as the command line checks
    them; ``cache_dir`` is where :meth:`Results.model` finds their models."""
    path = Path(path)
    if path.is_dir() and not (path / "results.json").exists() and (path / "cells").is_dir():
        raise UserError(f"{path} holds the cells of a run that never finished (no results.json): run the same "
                        "command again; it resumes from the cache and writes the results")
    data = read_results(path)
    return Results(data, path if path.is_dir() else path.parent, cache_dir)
