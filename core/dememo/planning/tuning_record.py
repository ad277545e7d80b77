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


# -- a plugin's own tuning file ----------------------------------------------------------------------
# `dememo-bench tune --unlearner NAME` also writes NAME's chosen values to a file of its own, which later runs
# of the same suite read for that unlearner: a new method gets the suite's selection protocol without editing
# the suite (its rows say "tuned", not "--set"). The suite's own tuning file keeps precedence for the
# unlearners it covers, so a local file never changes a shipped row.


def local_dir() -> Path:
    """Where plugins' own tuning files live: ``$DEMEMO_TUNING_DIR``, else ``$XDG_CONFIG_HOME/dememo/tuning``
    (``~/.config/dememo/tuning``)."""
    import os

    given = os.environ.get("DEMEMO_TUNING_DIR")
    if given:
        return Path(given)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "dememo" / "tuning"


def local_path(suite_name: str, unlearner: str) -> Path:
    """The tuning file of ``unlearner`` under suite ``suite_name`` (a suite name that is not a plain file name,
    such as ``../x``, is replaced by a digest of it: the file stays inside ``local_dir``)."""
    import re

    from dememo.hashing import digest

    safe = suite_name if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", suite_name) and ".." not in suite_name \
        else f"suite-{digest(suite_name)[:16]}"
    return local_dir() / safe / f"{unlearner}.json"


def protocol_fingerprint(suite: Any) -> str:
    """The suite as tuning sees it (everything but its own tuning record): tuned values apply to the suite
    they were chosen under, so a local file records it and is not read under another."""
    from dememo.hashing import digest

    return digest({k: v for k, v in suite.to_json().items() if k not in ("tuned", "tuning")})


def write_local(record: dict[str, Any], suite: Any, unlearner: str) -> Path:
    """Write (or update) ``unlearner``'s own tuning file from a ``tune`` record: its entries replace those of
    the same (dataset, forget set) in the file, which keeps the others."""
    from dememo import files
    from dememo.numbers import clean_number

    path = local_path(suite.name, unlearner)
    fingerprint = protocol_fingerprint(suite)
    mine = [e for e in record["entries"] if e["unlearner"] == unlearner]
    kept: list[dict[str, Any]] = []
    if path.exists():
        try:
            old = load(path)
        except UserError:
            old = {}
        if old.get("suite_fingerprint") == fingerprint:
            done = {(e["dataset"], e["forget"]) for e in mine}
            kept = [e for e in old.get("entries", []) if (e.get("dataset"), e.get("forget")) not in done]
    out = {**{k: v for k, v in record.items() if k != "entries"}, "suite_fingerprint": fingerprint,
           "entries": kept + mine}
    try:
        files.atomic_write_json(path, clean_number(out))
    except OSError as exc:
        raise UserError(f"cannot write the tuning file {path}: {exc.strerror or exc} (set DEMEMO_TUNING_DIR to a "
                        "writable directory)") from None
    return path


def load_local(suite: Any, unlearner: str) -> tuple[dict[str, Any] | None, str | None]:
    """``unlearner``'s own tuning file under ``suite`` and None, or None and why it is not used (unreadable, or
    tuned under another version of the suite); (None, None) when there is none."""
    path = local_path(suite.name, unlearner)
    if not path.is_file():
        return None, None
    try:
        data = load(path)
    except UserError as exc:
        return None, f"{exc}; its values are not used"
    if data.get("suite_fingerprint") != protocol_fingerprint(suite):
        return None, (f"{path} was tuned under another version of suite {suite.name!r}, so {unlearner} runs with the "
                      f"suite's values; run 'dememo-bench tune --suite {suite.name} --unlearner {unlearner}' again")
    return data, None
