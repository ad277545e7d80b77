"""The one writer of ``results.json`` with ``leaderboard.md``/``.csv``/``.json``/``.html``: a run's outputs
(``output_files``, ``write_outputs``) and the public board's (``board_files``, written by
:func:`dememo.board.public.build_board`), rendered in memory from a results document by the same
``leaderboard_files`` and ``leaderboard_page`` and written as one set (:func:`dememo.files.atomic_write_set`).
A run's page keeps its drawn figures in ``OUT/.figures`` (:class:`dememo.board.report.FigureCache`), so
re-writing the same results (a warm re-run) draws none."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dememo import results
from dememo.board import leaderboard
from dememo.board.report import FigureCache
from dememo.errors import UserError
from dememo.files import atomic_write_set

#: where a partial run writes its results when OUT already holds complete ones (never replaced by partial ones)
PARTIAL_DIR = "partial"
#: where a run's output directory keeps the figures of its leaderboard.html, by key (shared by its partial set)
FIGURE_DIR = ".figures"


def leaderboard_files(data: dict[str, Any], heading: str, preamble: str = "") -> dict[str, str]:
    """leaderboard.md (``# heading``, then ``preamble``, then the tables), leaderboard.csv and leaderboard.json
    (the tables as data) of a results document, rendered in memory."""
    return {
        "leaderboard.md": f"# {heading}\n\n{preamble}" + leaderboard.render(data, "github") + "\n",
        "leaderboard.csv": leaderboard.to_csv(data),
        "leaderboard.json": json.dumps(leaderboard.to_json(data), indent=1, ensure_ascii=False) + "\n",
    }


def leaderboard_page(data: dict[str, Any], survive_errors: bool = True, figures: FigureCache | None = None) -> str | None:
    """leaderboard.html of a results document, rendered in memory, its figures read from and kept in
    ``figures`` (None: all drawn). With ``survive_errors`` (a run) any error costs the page only: a warning on
    stderr and None, whose entry removes an older page with the set (no page is left that disagrees with the
    results beside it). Without (the board) a rendering error propagates, and None means that
    ``dememo.board.html`` is not available."""
    if not survive_errors:
        try:
            from dememo.board.html import figure_cache, render_page
        except ImportError:
            return None
        with figure_cache(figures):
            return render_page(data)
    try:
        from dememo.board.html import figure_cache, render_page

        with figure_cache(figures):
            page = render_page(data)
    except Exception as exc:  # noqa: BLE001
        print(f"dememo-bench: warning: leaderboard.html not written ({type(exc).__name__}: {' '.join(str(exc).split())})",
              file=sys.stderr)
        return None
    return page


def output_files(data: dict[str, Any], suite_name: str, figures: FigureCache | None = None) -> dict[str, bytes | None]:
    """A run's results.json and leaderboard.md/.csv/.json/.html, rendered in memory (nothing is written but
    figures kept in ``figures``, see :func:`leaderboard_page`). A rendering error costs the HTML page only: its
    entry is None, which removes an older page with the set (no page is left that disagrees with the results
    beside it)."""
    text: dict[str, str | None] = {
        "results.json": json.dumps(data, indent=1, sort_keys=True, allow_nan=True) + "\n",
        **leaderboard_files(data, f"dememo leaderboard — suite `{suite_name}`"),
    }
    text["leaderboard.html"] = leaderboard_page(data, figures=figures)
    return {name: None if content is None else content.encode("utf-8") for name, content in text.items()}


def board_files(data: dict[str, Any], heading: str, preamble: str) -> dict[str, str]:
    """The public board's results.json (the merged results, non-ASCII kept), leaderboard.md (``# heading``,
    ``preamble``: the entries table, then the tables), .csv, .json and .html, rendered in memory. An HTML
    rendering error propagates (nothing of the board is written); the page is left out when
    ``dememo.board.html`` is not available."""
    tables = leaderboard_files(data, heading, preamble)
    files = {
        "leaderboard.md": tables.pop("leaderboard.md"),
        "results.json": json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
        **tables,
    }
    page = leaderboard_page(data, survive_errors=False)
    if page is not None:
        files["leaderboard.html"] = page
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
    removes a stale ``out/partial/`` and the cached figures (``out/.figures``) its page no longer shows.
    Raises ``OSError`` when the set cannot be written."""
    figures = FigureCache(out / FIGURE_DIR)
    files = output_files(data, suite_name, figures)
    target = out / PARTIAL_DIR if results.is_partial(data) and _holds_complete_results(out) else out
    atomic_write_set(target, files)
    if not results.is_partial(data):
        _remove_stale_partial(out / PARTIAL_DIR, files)
        figures.prune()
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
