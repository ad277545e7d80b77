"""A tuning record (``dememo-bench tune``'s ``tuning.json``) as suites and the planner read it: its schema,
loading it, and looking up the values chosen for one (dataset, forget set, unlearner). The search that
writes it is ``dememo.engine.tuner``; keeping the record apart lets planning read it without importing the
runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dememo.errors import UserError

SCHEMA = "dememo.tuning/1"


def chosen(tuning: dict[str, Any] | None, dataset: str, forget: str, unlearner: str) -> dict[str, Any] | None:
    """The tuned entry for (dataset, forget label, unlearner), or None."""
    for entry in (tuning or {}).get("entries", []):
        if (entry.get("dataset"), entry.get("forget"), entry.get("unlearner")) == (dataset, forget, unlearner) and entry.get("chosen") is not None:
            return entry
    return None


def load(path: Path) -> dict[str, Any]:
    """Read a tuning file; a clear error when it is missing or is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"tuning file {path} not found; create it with 'dememo-bench tune --out DIR'") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"tuning file {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("entries"), list):
        raise UserError(f"{path} is not a {SCHEMA} file")
    return data
