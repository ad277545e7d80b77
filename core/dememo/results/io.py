"""Reading and writing ``results.json`` (schema ``dememo.results/1``, binding) and the per-cell files written as cells finish.

Each finished cell is written at once to ``<out>/cells/<key>.json`` (atomically), so an interrupted run
loses no finished cell; ``results.json`` is assembled from them at the end of every run. A run stopped
before its end (Ctrl-C, SIGTERM, a full disk) writes ``"partial": {"cells_done": n, "cells_planned": m}``,
which the leaderboards show and ``submit`` refuses; complete results have no such field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dememo.numbers import clean_number  # noqa: F401 (results' name for it)
from dememo import files
from dememo.errors import UserError, harness_storage, storage_advice
from dememo.results.check import _reject_constant, _short, shape_problem
from dememo.results.record import CellRecord

SCHEMA = "dememo.results/1"


def write_cell(out: Path, record: CellRecord) -> None:
    """Write a finished cell at once (atomically); a full disk or a permission error is a one-line
    StorageError."""
    try:
        files.atomic_write_json(out / "cells" / f"{record.key}.json", clean_number(record.to_json()))
    except OSError as exc:
        raise harness_storage(f"cannot write results to {out}: {storage_advice(exc, '--out')}; then run the same "
                           "command again (it resumes from the cache)") from None


def assemble(suite: dict[str, Any], environment: dict[str, Any], plugins: list[dict[str, Any]],
             columns: dict[str, Any], cells: list[dict[str, Any]], failures: list[dict[str, Any]],
             partial: tuple[int, int] | None = None) -> dict[str, Any]:
    """The results document; ``partial`` = (cells done, cells planned) for a run stopped before its end, which
    every reader then shows as partial (the field is absent from complete results)."""
    data = {
        "schema": SCHEMA,
        "suite": suite,
        "environment": environment,
        "plugins": plugins,
        "plugin_load_failures": failures,
        "columns": columns,
        "cells": cells,
    }
    if partial is not None:
        data["partial"] = {"cells_done": partial[0], "cells_planned": partial[1]}
    return clean_number(data)


def is_partial(data: dict[str, Any]) -> bool:
    """Whether results come from a run stopped before its end (they carry a ``partial`` field)."""
    return data.get("partial") is not None


def write_results(out: Path, results: dict[str, Any]) -> Path:
    path = out / "results.json"
    files.atomic_write_json(path, results)
    return path


def load_results(path: Path) -> dict[str, Any]:
    """Read a results file (or a directory holding ``results.json``), check its schema tag and the shape its
    readers rely on (:func:`shape_problem`). A results file is untrusted data: anything malformed — bytes
    that are not UTF-8 JSON, NaN or Infinity, nesting deeper than :data:`MAX_DEPTH`, a cell of the wrong
    shape, a metric beyond ±:data:`MAX_MAGNITUDE` — is a one-line :class:`UserError`."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if path.exists() and not path.is_file():  # a device or a pipe (``/dev/zero``) would be read forever
        raise UserError(f"{path} is not a results file (not a regular file)")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_reject_constant)
    except FileNotFoundError:
        raise UserError(f"no results at {path}; run 'dememo-bench --all --out DIR' first") from None
    except RecursionError:
        raise UserError(f"{path} is not a results file: its JSON is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not a readable results file: not UTF-8 text (byte {exc.start})") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable results file: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise UserError(f"{path} is not a {SCHEMA} file (schema: {_short(schema)})")
    problem = shape_problem(data)
    if problem:
        raise UserError(f"{path} is a malformed {SCHEMA} file: {problem}")
    return data


