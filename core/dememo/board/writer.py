"""The one writer of a run's outputs: ``results.json`` with ``leaderboard.md``/``.csv``/``.json``/``.html``,
rendered in memory and written as one set (:func:`dememo.files.atomic_write_set`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dememo import results
from dememo.board import leaderboard
from dememo.errors import UserError
from dememo.files import atomic_write_set

#: where a partial run writes its results when OUT already holds complete ones (never replaced by partial ones)
PARTIAL_DIR = "partial"


def output_files(data: dict[str, Any], suite_name: str) -> dict[str, bytes | None]:
    """results.json and leaderboard.md/.csv/.json/.html, rendered in memory (nothing is written). A rendering
    error costs the HTML page only: its entry is None, which removes an older page with the set (no page is
    left that disagrees with the results beside it)."""
    files: dict[str, bytes | None] = {
        "results.json": (json.dumps(data, indent=1, sort_keys=True, allow_nan=True) + "\n").encode(),
        "leaderboard.md": (f"# dememo leaderboard — suite `{suite_name}`\n\n" + leaderboard.render(data, "github")
                           + "\n").encode(),
        "leaderboard.csv": leaderboard.to_csv(data).encode(),
        "leaderboard.json": (json.dumps(leaderboard.to_json(data), indent=1, ensure_ascii=False) + "\n").encode(),
    }
    try:
        from dememo.board.html import render_page

        page = render_page(data)
    except Exception as exc:  # noqa: BLE001
        print(f"dememo-bench: warning: leaderboard.html not written ({type(exc).__name__}: {' '.join(str(exc).split())})",
              file=sys.stderr)
        files["leaderboard.html"] = None
        return files
    files["leaderboard.html"] = page.encode("utf-8")
    return files


def _holds_complete_results(out: Path) -> bool:
    """Whether ``out/results.json`` is a readable, complete (not partial) results file."""
    try:
        return not results.is_partial(results.load_results(out / "results.json"))
    except UserError:
        return False


def write_outputs(out: Path, data: dict[str, Any], suite_name: str) -> Path:
    """Write results.json and the leaderboards as one set (:func:`dememo.files.atomic_write_set`: all new or,
    on any failure, all as before) and return the directory written. Partial results never replace complete
    ones: when ``out`` holds a complete results.json they go to ``out/partial/`` instead. A complete set
    removes a stale ``out/partial/``. Raises ``OSError`` when the set cannot be written."""
    files = output_files(data, suite_name)
    target = out / PARTIAL_DIR if results.is_partial(data) and _holds_complete_results(out) else out
    atomic_write_set(target, files)
    if not results.is_partial(data):
        _remove_stale_partial(out / PARTIAL_DIR, files)
    return target


def _remove_stale_partial(where: Path, files: dict[str, bytes | None]) -> None:
    """Remove a partial set a complete one supersedes (best effort: a leftover is only stale)."""
    for name in files:
        try:
            (where / name).unlink()
        except OSError:
            pass
    try:
        where.rmdir()
    except OSError:
        pass
