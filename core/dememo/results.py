"""``results.json`` (schema ``dememo.results/1``, binding) and the per-cell files written as cells finish.

Each finished cell is written at once to ``<out>/cells/<key>.json`` (atomically), so an interrupted run
loses no finished cell; ``results.json`` is assembled from them at the end of every run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .cache import atomic_write_json
from .errors import StorageError, UserError

SCHEMA = "dememo.results/1"


def clean_number(value: Any) -> Any:
    """JSON has no NaN/Inf: write them as null (the leaderboard shows 'n/a')."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_number(v) for v in value]
    return value


def write_cell(out: Path, record: dict[str, Any]) -> None:
    """Write a finished cell at once (atomically); a full disk is a one-line StorageError."""
    try:
        atomic_write_json(out / "cells" / f"{record['key']}.json", clean_number(record))
    except OSError as exc:
        raise StorageError(f"cannot write results to {out}: {exc.strerror or exc}; free space and run the same "
                           "command again (it resumes from the cache)") from None


def read_cells(out: Path) -> dict[str, dict[str, Any]]:
    cells = {}
    for path in sorted((out / "cells").glob("*.json")):
        try:
            record = json.loads(path.read_text())
            cells[record["key"]] = record
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a foreign or damaged file is ignored; the cell is recomputed from the cache
    return cells


def assemble(suite: dict[str, Any], environment: dict[str, Any], plugins: list[dict[str, Any]],
             columns: dict[str, Any], cells: list[dict[str, Any]], failures: list[dict[str, Any]]) -> dict[str, Any]:
    return clean_number({
        "schema": SCHEMA,
        "suite": suite,
        "environment": environment,
        "plugins": plugins,
        "plugin_load_failures": failures,
        "columns": columns,
        "cells": cells,
    })


def write_results(out: Path, results: dict[str, Any]) -> Path:
    path = out / "results.json"
    atomic_write_json(path, results)
    return path


def load_results(path: Path) -> dict[str, Any]:
    """Read a results file (or a directory holding ``results.json``) and check its schema tag."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no results at {path}; run 'dememo-bench --all --out DIR' first") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable results file: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UserError(f"{path} is not a {SCHEMA} file (schema: {data.get('schema') if isinstance(data, dict) else None!r})")
    return data
