"""The public board: accepted bundles merged into one leaderboard directory (``build_board``).

The board (``leaderboard build ENTRIES_DIR --out DIR``) merges accepted bundles. Its protocol is the pair
(bundle schema, results schema) and its suite is pinned by ``ENTRIES_DIR/board.json``
(``{"schema": "dememo.board/1", "suite_fingerprint": "<64 hex>"}``) when present, else the fingerprint
most readable bundles share (a tie goes to the smallest). A bundle is refused (one line naming the file and
the reason) when it is unreadable, fails any check of ``check_bundle`` (what ``verify`` checks without
re-running: labels consistent with the params, metric ranges, the suite's plan for everything not its own,
reference rows, ...), has another protocol or suite, or carries rows it does not own. The plugins installed
where the board is built are its trust anchor (``_anchor_problem``): a bundle claiming an installed plugin
under another distribution or version is refused alone, and in a conflict (below) with a bundle of an
installed distribution (name and version) the other bundle alone is held back. Beyond that ``plugins`` is
self-declared, so the board believes no bundle's word over another's: two bundles with the same content,
entry name or distribution, a row-owning plugin (family, name) both claim, a row both own, or a column both
define differently are *both* held back, each message naming both files; names compare folded (``fold``). Nothing
depends on the files' names or their order. With ``--rerun K`` every entry that the previous board in
``--out`` does not record as re-run with at least K cells (``entries[*].rerun``) has K own cells re-run,
and is held back when one fails.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import attrs

from dememo import results as results_mod
from dememo.board import leaderboard, writer
from dememo.board.bundle import (SCHEMA, TABLE_FAMILIES, Check, _few, _slot, _where, check_bundle, claimed_plugins,
                                 column_cells, column_plugins, dist_key, fold, load_bundle, owning_plugins,
                                 split_cells)
from dememo.board.verify import ABS_TOL, REL_TOL, compare, rerun_checks, tolerance_text
from dememo.errors import UserError
from dememo.files import write_files
from dememo.results.record import CellRecord

BOARD_SCHEMA = "dememo.board/1"


@attrs.define
class Board:
    """What ``build_board`` did: the accepted entries, the refused (or held back) files with the reason,
    notes, the re-run verdicts (file, check) of ``--rerun``, files written."""

    accepted: list[dict[str, Any]] = attrs.field(factory=list)
    refused: list[tuple[str, str]] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    written: list[Path] = attrs.field(factory=list)
    reruns: list[tuple[str, Check]] = attrs.field(factory=list)


@attrs.define
class _Candidate:
    """A bundle that passed the per-file checks, its cells split by ownership (``split_cells``)."""

    file: str
    bundle: dict[str, Any]
    own: list[dict[str, Any]]
    context: list[dict[str, Any]]
    #: rows of others on which it gives its metrics' columns (``column_cells``)
    columns: list[dict[str, Any]] = attrs.field(factory=list)
    #: a table owner's rows given to the entry (file) that carries them too (``_yield_to_row_owners``)
    yielded: list[tuple[dict[str, Any], str]] = attrs.field(factory=list)
    #: its ``leaderboard build --rerun`` record (``_rerun_new``), None when it was never re-run
    rerun: dict[str, Any] | None = None

    @property
    def slots(self) -> dict[tuple, dict[str, Any]]:
        return {_slot(c): c for c in self.own}


def _pinned(entries_dir: Path) -> str | None:
    """The suite fingerprint pinned by ``ENTRIES_DIR/board.json`` (None when there is none)."""
    path = entries_dir / "board.json"
    if not path.exists():
        return None
    data = load_bundle(path)
    fp = data.get("suite_fingerprint")
    if data.get("schema") != BOARD_SCHEMA or not (isinstance(fp, str) and len(fp) == 64
                                                  and all(ch in "0123456789abcdef" for ch in fp)):
        raise UserError(f"{path} must be {{\"schema\": \"{BOARD_SCHEMA}\", \"suite_fingerprint\": \"<64 hex>\"}}")
    return fp


def _refusal(b: dict[str, Any], fingerprint: str | None, checks: bool = True) -> str | None:
    """Why the board refuses a bundle on its own: another protocol, any failing check of ``check_bundle``
    (``verify`` without re-runs: schema, content hash, keys, labels, metrics, series, suite, plugin
    versions, reference rows; the board accepts only what ``verify`` passes) or, once the board's suite is
    known, another suite."""
    protocol = (b.get("schema"), b.get("results_schema"))
    if protocol != (SCHEMA, results_mod.SCHEMA):
        return (f"protocol {protocol[0]!r} / {protocol[1]!r} differs from the board's "
                f"{SCHEMA!r} / {results_mod.SCHEMA!r}")
    failed = [c for c in check_bundle(b) if not c.ok] if checks else []
    if failed:
        return f"{failed[0].name} check failed: {failed[0].detail}"
    if fingerprint is not None and b["suite_fingerprint"] != fingerprint:
        return (f"suite {b['suite']['name']!r} fingerprint {b['suite_fingerprint'][:12]} differs from the board's "
                f"{fingerprint[:12]}: the entry was run under another suite")
    return None


def _own_problem(b: dict[str, Any], own: list[dict[str, Any]], foreign: list[dict[str, Any]],
                 columns: list[dict[str, Any]] = ()) -> str | None:
    """Why a bundle's rows cannot be its entry: rows of plugins it does not provide, no row or column of its
    own, or two own cells on one row (or two cells giving its columns on one row: only one could be shown)."""
    dist = b["plugin"]["distribution"]
    if foreign:
        return (f"carries {len(foreign)} rows of plugins {dist} does not list under `plugins`, e.g. {_where(foreign[0])}: "
                "a bundle may carry only rows of its own distribution's plugins, the reference rows of their "
                "tables and rows its metrics were computed on; re-make it with `dememo-bench submit --plugin DIST`")
    if not own and not columns:
        return (f"has no row or metric column of a plugin it lists under `plugins`: nothing of {dist} to put on the "
                f"board; bundle a run of its plugins with `dememo-bench submit --plugin {dist}`")
    for cells, what in ((own, "cells are"), (columns, "cells give its columns on")):
        seen: dict[tuple, dict[str, Any]] = {}
        for c in cells:
            if _slot(c) in seen:
                return (f"two of its {what} the row {_where(c)} (keys {seen[_slot(c)]['key'][:12]}, {c['key'][:12]}): "
                        "submit one configuration per row")
            seen[_slot(c)] = c
    return None


def _row_config(cell: dict[str, Any]) -> dict[str, Any]:
    """What defines a cell's row apart from the metrics computed on it (its ``params`` less ``metrics``): a
    metric's column on a row is merged only onto the board's cell of the same configuration."""
    return {k: v for k, v in cell["params"].items() if k != "metrics"}


def _installed_columns(b: dict[str, Any], registry: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The columns (track → column → its declaration) of the bundle's metrics (``column_plugins``) as the
    metric classes installed where the board is built declare them, and the claimed metrics that are not
    installed here from the bundle's distribution and version. The installed plugins are the board's trust
    anchor: it merges only columns it could re-run, named and described by the installed class (never by the
    bundle's own ``columns``; the registry keeps a column key unique on its track)."""
    dist = b["plugin"]
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    missing = []
    for name in sorted(column_plugins(b)):
        info = registry.classes.get("metric", {}).get(name)
        if info is None or dist_key(info.distribution) != dist_key(dist["distribution"]) \
                or info.dist_version != dist["version"]:
            missing.append(name)
            continue
        for track in info.cls.tracks:
            out[track].update({col: c.to_json(name) for col, c in info.cls.columns.items()})
    return out, missing


def _merge_columns(entry: _Candidate, cells: dict[tuple, dict[str, Any]], mine: dict[str, dict[str, Any]],
                   missing: list[str]) -> tuple[dict[str, set[str]], list[str]]:
    """Put the entry's metric columns (``mine``, and the ``missing`` metrics not installed here:
    ``_installed_columns``) onto the board's rows it computed them on, from its finished cells, where the
    row's own entry has no value of them (a row's owner's measurement is never replaced, and a null never
    fills anything). A row the board does not have, or has in another configuration, is left as it is. The
    columns filled (track → column → declaration), and notes on what was not."""
    merged: dict[str, dict[str, Any]] = defaultdict(dict)
    absent, other = [], []
    for c in entry.columns:
        if c["status"] != "ok":
            continue
        target = cells.get(_slot(c))
        if target is None:
            absent.append(c)
            continue
        if _row_config(target) != _row_config(c):
            other.append(c)
            continue
        cols = mine.get(c["track"], {})
        values = {k: v for k, v in c["metrics"].items() if k in cols and v is not None
                  and target["metrics"].get(k) is None}
        series = {k: v for k, v in (c.get("series") or {}).items() if k in cols
                  and (target.get("series") or {}).get(k) is None}
        if not values and not series:
            continue
        cells[_slot(c)] = target = {**target, "metrics": {**target["metrics"], **values}}
        if series:
            target["series"] = {**(target.get("series") or {}), **series}
        merged[c["track"]].update({k: cols[k] for k in (*values, *series)})
    notes = []
    if missing:
        notes.append(f"{entry.file}: its metric(s) {', '.join(missing)} are not installed where the board is built (from "
                     f"{entry.bundle['plugin']['distribution']} {entry.bundle['plugin']['version']}), so their columns "
                     "are not merged onto other entries' rows; install the distribution to merge them")
    if other:
        notes.append(f"{entry.file}: {len(other)} of the rows it computed its metrics on are on the board in another "
                     f"configuration (another version or parameters of their plugins), e.g. {_where(other[0])}; its "
                     "columns are left out there")
    if absent:
        notes.append(f"{entry.file}: {len(absent)} of the rows it computed its metrics on are not on the board (no "
                     f"accepted entry owns them), e.g. {_where(absent[0])}")
    return merged, notes


def _anchor_problem(b: dict[str, Any], registry: Any) -> str | None:
    """The board's trust anchor: the plugins installed where the board is built (``plugins.get_registry``),
    which the maintainer chose. A bundle that claims a plugin (family, name) installed here must name the
    distribution and version it is installed from; else it is refused alone, whatever other bundle it would
    conflict with (a claim on ``unlearner retrain`` or ``attack none`` under another distribution, or
    distribution ``dememo`` at another version, cannot take the installed entry off the board). Conflicts
    between plugins not installed here stay conflicts: both held back."""
    dist = b["plugin"]
    for family, name in sorted(claimed_plugins(b)):
        info = registry.classes.get(family, {}).get(name)
        if info is None:
            continue
        if dist_key(info.distribution) != dist_key(dist["distribution"]) or info.dist_version != dist["version"]:
            return (f"claims {family} {name!r} as {dist['distribution']} {dist['version']}'s, but the board's installed "
                    f"{family} {name!r} is {info.distribution} {info.dist_version}'s (the plugins installed where the "
                    "board is built settle who provides a plugin): re-make the bundle with only your own plugins, "
                    "under the installed version")
    return None


def _columns_differ(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Columns (track/column) both bundles declare with different metadata: the direction, unit or
    reference of a column decides how every entry's numbers read, so neither bundle may set it alone."""
    return [f"{t}/{col}" for t in sorted(set(a["columns"]) & set(b["columns"]))
            for col in sorted(set(a["columns"][t]) & set(b["columns"][t])) if a["columns"][t][col] != b["columns"][t][col]]


def _conflict(x: _Candidate, y: _Candidate) -> str | None:
    """What two bundles both claim (None when nothing): the same content, entry name, distribution, a plugin
    (family, name) that owns rows (``owning_plugins``), an own row, or a column's definition; names compare
    folded (``fold``, ``dist_key``), so a look-alike is the same name. A bundle's claims are self-declared,
    so the board believes neither over the other (what the installed plugins settle is refused alone
    before, ``_anchor_problem``)."""
    a, b = x.bundle, y.bundle
    found = []
    if a["content_sha256"] == b["content_sha256"]:
        found.append("same content")
    if fold(a["name"]) == fold(b["name"]):
        found.append(f"both are named {a['name']!r}")
    if dist_key(a["plugin"]["distribution"]) == dist_key(b["plugin"]["distribution"]):
        found.append(f"both are distribution {a['plugin']['distribution']!r}")
    folded = {(f, fold(n)): (f, n) for f, n in owning_plugins(a)}
    plugins = sorted(folded[(f, fold(n))] for f, n in owning_plugins(b) if (f, fold(n)) in folded)
    if plugins:
        found.append(f"both claim {len(plugins)} plugin(s), e.g. {plugins[0][0]} {plugins[0][1]!r}")
    rows = sorted(set(x.slots) & set(y.slots), key=str)
    if rows:
        found.append(f"both carry {len(rows)} row(s) as their own, e.g. {_where(x.slots[rows[0]])}")
    columns = _columns_differ(a, b)
    if columns:
        found.append(f"they define column {columns[0]} differently")
    return "; ".join(found) or None


def _table_owner(e: _Candidate) -> bool:
    return any(family in TABLE_FAMILIES for family, _ in owning_plugins(e.bundle))


def _yield_to_row_owners(candidates: list[_Candidate]) -> None:
    """A dataset's or architecture's entry carries every row of its tables (``owning_plugins``); a row that
    another entry carries as its own by the plugins that define it (first-party ``dememo``'s reference rows,
    a method's own rows) is that entry's on the board, and the table owner's copy becomes context (compared,
    never merged), so the two entries do not conflict over it. Rows no other entry carries stay the table
    owner's."""
    owner = {e.file: _table_owner(e) for e in candidates}
    taken = {slot: x.file for x in candidates if not owner[x.file] for slot in x.slots}
    for e in (e for e in candidates if owner[e.file]):
        e.yielded = [(c, taken[_slot(c)]) for c in e.own if _slot(c) in taken]
        e.context = e.context + [c for c, _ in e.yielded]
        e.own = [c for c in e.own if _slot(c) not in taken]


def _reclaim(candidates: list[_Candidate], held: set[str]) -> None:
    """A table owner takes back the rows it gave to an entry that is then held back (nobody else shows them)."""
    for e in candidates:
        back = [c for c, taker in e.yielded if taker in held]
        if back:
            e.own = e.own + back
            e.context = [c for c in e.context if not any(c is b for b in back)]
            e.yielded = [(c, taker) for c, taker in e.yielded if taker not in held]


def installed_distributions(registry: Any) -> set[tuple[str, str]]:
    """(``dist_key`` of the name, version) of every distribution with a plugin installed here."""
    return {(dist_key(i.distribution), i.dist_version) for fam in registry.classes.values() for i in fam.values()}


def _conflicts(candidates: list[_Candidate], installed: set[tuple[str, str]] = frozenset()) -> dict[str, list[str]]:
    """Per file, the conflicts it is in (each message names both files). When exactly one of the two is of a
    distribution installed where the board is built (``installed``: name and version), the installed one is
    the board's trust anchor and only the other is held back (a bundle cannot take the installed entry off
    the board by taking its name or redefining its columns); otherwise both are held back, so which file name
    sorts first decides nothing."""
    out: dict[str, list[str]] = defaultdict(list)
    anchored = lambda e: (dist_key(e.bundle["plugin"]["distribution"]), e.bundle["plugin"]["version"]) in installed  # noqa: E731
    for i, x in enumerate(candidates):
        for y in candidates[i + 1:]:
            why = _conflict(x, y)
            if why and anchored(x) != anchored(y):
                kept, other = (x, y) if anchored(x) else (y, x)
                dist = kept.bundle["plugin"]
                out[other.file].append(f"held back: {other.file} conflicts with {kept.file} ({why}), whose distribution "
                                       f"{dist['distribution']} {dist['version']} is installed where the board is built "
                                       "and is kept")
            elif why:
                first, second = sorted((x.file, y.file))
                msg = (f"held back: {first} and {second} conflict ({why}); neither is trusted over the other, "
                       "so both stay off the board until one is withdrawn or corrected")
                out[x.file].append(msg)
                out[y.file].append(msg)
    return out


def _board_fingerprint(pinned: str | None, loaded: list[tuple[str, dict[str, Any]]]) -> str | None:
    """The board's suite: pinned by ``board.json``, else the fingerprint most bundles share (a tie goes to
    the smallest fingerprint), so that no file name's place in the order decides it."""
    if pinned is not None or not loaded:
        return pinned
    counts: dict[str, int] = defaultdict(int)
    for _, b in loaded:
        counts[b["suite_fingerprint"]] += 1
    return min(counts, key=lambda fp: (-counts[fp], fp))


def _copy_diffs(board_cell: dict[str, Any], copy: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """How a bundle's copy of a reference cell differs from the board's (the owner's) beyond the
    ``verify --rerun`` tolerance."""
    if board_cell["key"] != copy["key"]:
        return [f"another configuration (key {copy['key'][:12]}, the board's {board_cell['key'][:12]})"]
    return [d.replace(" claimed", " on the board").replace("claimed ", "on the board ").replace("recomputed", "in this bundle")
            for d in compare(CellRecord.from_json(board_cell), CellRecord.from_json(copy), meta, ABS_TOL, REL_TOL)]


def _context_notes(entry: _Candidate, cells: dict[tuple, dict[str, Any]], owners: dict[tuple, str]) -> list[str]:
    """Notes on a bundle's copies of reference rows it does not own: never merged (the owner's copy is
    shown), but a copy that disagrees with the owner's, or that no accepted owner provides, is said."""
    differ, missing = [], []
    for c in entry.context:
        board_cell = cells.get(_slot(c))
        if board_cell is None:
            missing.append(c)
            continue
        diffs = _copy_diffs(board_cell, c, entry.bundle["columns"].get(c["track"], {}))
        if diffs:
            differ.append(f"{_where(c)} ({owners[_slot(c)]}'s copy on the board): {_few(diffs, 2)}")
    notes = []
    if differ:
        notes.append(f"{entry.file}: {len(differ)} of its copies of reference rows differ beyond tolerance "
                     f"({tolerance_text(ABS_TOL, REL_TOL)}) from the copies of the entry that provides the reference "
                     f"plugins, e.g. {differ[0]}; the board shows the provider's copies: read this entry's rows with "
                     "care, and re-run it under the board's dememo version")
    if missing:
        notes.append(f"{entry.file}: {len(missing)} of its reference rows have no copy from an accepted entry that "
                     f"provides the reference plugins, e.g. {_where(missing[0])}; they are left off the board")
    return notes


def previous_entries(out_dir: Path) -> dict[str, dict[str, Any] | None] | None:
    """The ``content_sha256`` of every entry on the board already in ``out_dir`` (its ``results.json``) → its
    re-run record there (``entries[*].rerun``: ``{"k", "cells", "seed", "verdict"}``, None when it was not
    re-run), or None when there is no readable board: ``leaderboard build --rerun K`` skips only entries
    re-run with at least K before."""
    path = out_dir / "results.json"
    if not path.exists():
        return None
    try:
        data = load_bundle(path)  # read like a bundle: JSON only, size-limited
    except UserError:
        return None
    entries = data.get("entries")
    if not isinstance(entries, list):
        return None
    out: dict[str, dict[str, Any] | None] = {}
    for e in entries:
        if isinstance(e, dict) and isinstance(e.get("content_sha256"), str):
            record = e.get("rerun")
            ok = isinstance(record, dict) and isinstance(record.get("k"), int) and record.get("verdict") == "pass"
            out[e["content_sha256"]] = record if ok else None
    return out


def _rerun_new(board: Board, accepted: list[_Candidate], out_dir: Path, rerun: int, seed: int | None,
               runner: dict[str, Any]) -> list[_Candidate]:
    """``--rerun K``: K sampled own cells of every entry re-run with the installed plugins (``rerun_checks``),
    except an entry the previous board in ``out_dir`` records as re-run (same content) with at least K cells
    drawn and passed (``previous_entries``; a board built without ``--rerun`` records none, so its entries
    are re-run). An entry whose re-run fails is held back; a passed one has its record, ``{"k": K, "cells":
    re-run, "seed": S, "verdict": "pass"}``, on the board (``results.json`` ``entries[*].rerun``)."""
    if previous_entries(out_dir) is None:
        board.notes.append(f"no previous board in {out_dir} (results.json): every entry counts as new and is re-run")
    seed = secrets.randbits(32) if seed is None else seed
    kept = []
    for e in accepted:
        before = e.rerun
        if before is not None and before["k"] >= rerun:
            board.notes.append(f"{e.file}: already re-run on the board in {out_dir} (same content, --rerun "
                               f"{before['k']}, seed {before.get('seed')}): not re-run")
            kept.append(e)
            continue
        checks = rerun_checks(e.bundle, rerun, seed=seed, **runner)
        board.reruns += [(e.file, c) for c in checks]
        failed = [c for c in checks if not c.ok]
        if failed:
            from dememo.params import printable

            board.refused.append((e.file, printable(f"held back: {len(failed)} of {len(checks)} re-run cells failed "
                                                    f"(--rerun-seed {seed}): {failed[0].detail}")))
        else:
            e.rerun = {"k": rerun, "cells": len(checks), "seed": seed, "verdict": "pass"}
            kept.append(e)
    return kept


def build_board(entries_dir: Path | str, out_dir: Path | str, rerun: int = 0, rerun_seed: int | None = None,
                runner_factory: Callable[[Any, Path], Any] | None = None, device: Any = "cpu",
                data_dir: Any = None) -> Board:
    """Merge every acceptable ``*.json`` bundle in ``entries_dir`` into ``out_dir``, written as a run writes
    its directory: ``results.json`` (the merged ``dememo.results/1`` dict, with ``entries`` and ``board``),
    ``leaderboard.md`` (an entries table, then the tables), ``leaderboard.csv``, ``leaderboard.json`` (the
    tables as data) and ``leaderboard.html`` (when ``dememo.board.html`` is available). Nothing a
    bundle holds is executed; with ``rerun=K`` sampled own cells of new entries are re-run with the
    installed plugins.

    Each bundle puts only its own rows (``is_own``) on the board, and a metric's bundle its metrics' columns on
    the board's rows of the same configuration (``_merge_columns``, for metrics installed here from its
    distribution; such columns are shown, never ranked); its copies of other distributions' reference rows
    are context, never merged, as are a dataset's or architecture's copies of rows another entry owns by
    their plugins (``_yield_to_row_owners``). A bundle that claims a plugin installed here under another
    distribution or version is refused alone (``_anchor_problem``); two bundles that claim the same content,
    name, distribution, plugin, row or column definition are both held back, unless exactly one is of an
    installed distribution, which is kept (``_conflicts``). The result does not depend on the files' names."""
    from dememo.params import printable

    entries_dir, out_dir = Path(entries_dir), Path(out_dir)
    if not entries_dir.is_dir():
        raise UserError(f"no entries directory at {entries_dir}")
    if rerun < 0:
        raise UserError("--rerun must be at least 0")
    board = Board()
    loaded = []
    for path in sorted(entries_dir.glob("*.json")):
        if path.name == "board.json":
            continue
        fname = printable(path.name)  # shown in one-line messages
        try:
            b = load_bundle(path)
        except UserError as exc:
            board.refused.append((fname, printable(str(exc))))
            continue
        reason = _refusal(b, None)
        if reason is not None:
            board.refused.append((fname, printable(reason)))
            continue
        loaded.append((fname, b))
    fingerprint = _board_fingerprint(_pinned(entries_dir), loaded)
    candidates = []
    for fname, b in loaded:
        own, context, foreign = split_cells(b)
        columns = column_cells(b)
        reason = _refusal(b, fingerprint, checks=False) or _own_problem(b, own, foreign, columns)
        if reason is not None:
            board.refused.append((fname, printable(reason)))
            continue
        given = {c["key"] for c in columns}
        candidates.append(_Candidate(fname, b, own, [c for c in context if c["key"] not in given], columns))
    from dememo import plugins

    registry = plugins.get_registry()
    anchored = []
    for e in candidates:
        reason = _anchor_problem(e.bundle, registry)
        if reason is not None:
            board.refused.append((e.file, printable(reason)))
        else:
            anchored.append(e)
    candidates = anchored
    _yield_to_row_owners(candidates)
    conflicts = _conflicts(candidates, installed_distributions(registry))
    _reclaim(candidates, {e.file for e in candidates if conflicts.get(e.file)})
    for e in candidates:
        if conflicts.get(e.file):
            board.refused.append((e.file, printable(" | ".join(conflicts[e.file]))))
    accepted = sorted((e for e in candidates if not conflicts.get(e.file)),
                      key=lambda e: (e.bundle["name"], e.bundle["content_sha256"]))
    previous = previous_entries(out_dir) or {}
    for e in accepted:  # a re-run record stays with the same content, whether or not this build re-runs
        e.rerun = previous.get(e.bundle["content_sha256"])
    if rerun and accepted:
        accepted = _rerun_new(board, accepted, out_dir, rerun, rerun_seed,
                              {"runner_factory": runner_factory, "device": device, "data_dir": data_dir})
    if not accepted:
        detail = "; ".join(f"{f}: {r}" for f, r in board.refused) or "no *.json bundle in it"
        raise UserError(printable(f"no acceptable bundle in {entries_dir} ({detail})"))
    suite = accepted[0].bundle["suite"]  # every accepted bundle has the board's fingerprint: the same suite
    cells: dict[tuple, dict[str, Any]] = {}  # slot -> cell
    owners: dict[tuple, str] = {}
    columns: dict[str, dict[str, Any]] = defaultdict(dict)
    plugin_rows: dict[tuple[str, str], dict[str, Any]] = {}
    for e in accepted:
        b = e.bundle
        for c in e.own:  # no two accepted bundles own one row (``_conflict``)
            cells[_slot(c)] = {**c, "entry": b["name"]}
            owners[_slot(c)] = e.file
        for track, meta in b["columns"].items():
            for col, m in meta.items():
                columns[track].setdefault(col, m)  # equal wherever two bundles declare it (``_conflict``)
        for p in b["plugins"]:
            plugin_rows[(p["family"], p["name"])] = {**p, "distribution": b["plugin"]["distribution"],
                                                    "distribution_version": b["plugin"]["version"]}
        board.accepted.append({
            "name": b["name"], "file": e.file, "distribution": b["plugin"]["distribution"],
            "version": b["plugin"]["version"], "cells": len(e.own),
            "seeds": b["seeds"], "environment": b["environment"], "content_sha256": b["content_sha256"],
            **({"rerun": e.rerun} if e.rerun else {}),
        })
    for e, record in zip(accepted, board.accepted):  # metric columns go onto the rows their owners put there
        if e.columns:
            mine, missing = _installed_columns(e.bundle, registry)
            given, notes = _merge_columns(e, cells, mine, missing)
            record["columns"] = sorted({col for cols in given.values() for col in cols})
            # every column of an installed metric with an entry of its own is as its class declares it, and shown,
            # never ranked, whether or not the rows' owners measured it too (the data decides nothing)
            for track, cols in mine.items():
                for col, meta in cols.items():
                    columns[track][col] = {**meta, "contributed": e.bundle["name"]}
            board.notes += [printable(n) for n in notes]
    for e in accepted:
        board.notes += [printable(n) for n in _context_notes(e, cells, owners)]
    merged = {
        "schema": results_mod.SCHEMA,
        "suite": suite,
        "environment": {},
        "plugins": [plugin_rows[k] for k in sorted(plugin_rows)],
        "plugin_load_failures": [],
        "columns": {t: columns[t] for t in sorted(columns)},
        "cells": sorted(cells.values(), key=lambda c: c["key"]),
        "entries": board.accepted,
        "board": {"schema": BOARD_SCHEMA, "suite_fingerprint": fingerprint},
    }
    # every file is rendered before any is written, and each is written atomically: a failure leaves no
    # partial board
    files = writer.board_files(merged, f"dememo leaderboard — suite {leaderboard.md_code(suite['name'])}",
                               entries_table(board.accepted) + "\n\n")
    if "leaderboard.html" not in files:
        board.notes.append("leaderboard.html skipped: dememo.board.html is not available")
    board.written += write_files(out_dir, files)
    return board


def entries_table(entries: list[dict[str, Any]]) -> str:
    """The Markdown table of the board's entries; every bundle-supplied string is escaped
    (``leaderboard.md_escape``), so a name cannot add columns, markup, images or links."""
    from tabulate import tabulate

    from dememo.board.leaderboard import md_escape

    rows = []
    for e in entries:
        env = e["environment"]
        columns = ", ".join(md_escape(c) for c in e.get("columns", [])) or "—"
        rows.append([md_escape(e["name"]), md_escape(e["distribution"]), md_escape(e["version"]), e["cells"], columns,
                     len(e["seeds"]), md_escape(env.get("dememo")), md_escape(env.get("torch")),
                     md_escape(env.get("gpu") or env.get("device") or "cpu"), f"`{e['content_sha256'][:12]}`"])
    header = ["entry", "distribution", "version", "rows", "its columns", "seeds", "dememo", "torch", "device", "sha256"]
    return "## Entries\n\n" + tabulate(rows, header, tablefmt="github")

