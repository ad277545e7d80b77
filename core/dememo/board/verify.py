"""``verify --rerun``: cells drawn from a bundle's own rows (``pick_cells``) are re-planned from the bundle's
suite with the locally installed plugins and the parameters each cell records (so a run made with ``--set``
re-plans too; the recomputed cell key must equal the claimed one, else the check names the plugin, version
or parameter that differs), re-run from an empty cache, and every metric is compared within a stated
tolerance (``compare``). The checks without re-runs are :mod:`dememo.board.bundle`'s (``check_bundle``).
"""

from __future__ import annotations

import json
import random
import secrets
import tempfile
from pathlib import Path
from typing import Any, Callable

from dememo import results as results_mod
from dememo.board.bundle import (CELL_FAMILIES, Check, _few, _leaf_diffs, canonical_bytes, check_bundle,
                                 claimed_plugins, own_cells, owning_plugins)
from dememo.errors import UserError
from dememo.results.record import CellRecord, records

#: default tolerances of ``verify --rerun``: absolute for fraction columns, relative otherwise
ABS_TOL = 0.02
REL_TOL = 0.05


def tolerance_text(abs_tol: float, rel_tol: float) -> str:
    return f"|Δ| ≤ {abs_tol:g} for fraction columns, ≤ {rel_tol * 100:g}% relative otherwise; wall-clock columns skipped"


def _close(a: float, b: float, unit: str | None, abs_tol: float, rel_tol: float) -> bool:
    if unit == "fraction":
        return abs(a - b) <= abs_tol + 1e-12
    if unit == "series":  # a curve's unit is not recorded: either rule may hold
        return abs(a - b) <= max(abs_tol, rel_tol * max(abs(a), abs(b))) + 1e-12
    return abs(a - b) <= rel_tol * max(abs(a), abs(b)) + 1e-12


def compare(claimed: CellRecord, record: CellRecord, meta: dict[str, Any], abs_tol: float,
            rel_tol: float) -> list[str]:
    """Differences between a claimed cell and its recomputed record beyond the tolerance (both checked
    records: the claim comes from a bundle that passed its checks)."""
    diffs = []
    if claimed.status != record.status:
        msg = record.error.message if record.error else ""
        diffs.append(f"status {claimed.status} claimed, {record.status} recomputed {msg[:120]}".rstrip())
    got = results_mod.clean_number(record.metrics)
    for col in sorted(set(claimed.metrics) | set(got)):
        if meta.get(col, {}).get("wall_clock"):
            continue
        a, b = claimed.metrics.get(col, "missing"), got.get(col, "missing")
        if a is None and b is None:
            continue
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            diffs.append(f"{col}: claimed {a!r}, recomputed {b!r}")
        elif not _close(a, b, meta.get(col, {}).get("unit"), abs_tol, rel_tol):
            diffs.append(f"{col}: claimed {a:.6g}, recomputed {b:.6g}")
    got_series = results_mod.clean_number(record.series or {})
    for col in sorted(set(claimed.series or {}) | set(got_series)):
        a, b = (claimed.series or {}).get(col), got_series.get(col)
        if a is None or b is None or a["x"] != b["x"]:
            diffs.append(f"series {col}: claimed and recomputed grids differ")
            continue
        for x, ya, yb in zip(a["x"], a["y"], b["y"]):
            if (ya is None) != (yb is None) or (ya is not None and not _close(ya, yb, "series", abs_tol, rel_tol)):
                diffs.append(f"series {col} at x={x:g}: claimed {ya!r}, recomputed {yb!r}")
                break
    return diffs


def has_numbers(cell: dict[str, Any]) -> bool:
    """Whether a cell carries a value the board shows: a metric or a point of a series that is not null."""
    return any(v is not None for v in cell["metrics"].values()) or any(
        y is not None for s in (cell.get("series") or {}).values() for y in s.get("y", []))


def pick_cells(b: dict[str, Any], k: int, seed: int) -> list[dict[str, Any]]:
    """``k`` cells drawn with ``random.Random(seed)`` from the rows the bundle claims as its own
    (``own_cells``) that are finished or carry a number (``has_numbers``): never another distribution's
    reference rows it carries as context. A failed cell keeps the metrics it computed before its failing
    stage, and the board shows and ranks them; so it is drawn like a finished one (its re-run must fail too,
    with the same numbers): every number on the board can be drawn, and a bundle cannot shield forged
    numbers from re-runs by marking their cell failed. Empty when it has no such own cell."""
    own = sorted((c for c in own_cells(b) if c["status"] == "ok" or has_numbers(c)), key=lambda c: c["key"])
    return random.Random(seed).sample(own, min(k, len(own)))


def _recorded_sets(params: dict[str, Any], own: set[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """``--set``-style overrides that give the bundle's own plugins (``own``: ``owning_plugins``) of a cell
    the parameters its bundle records (each spec's ``params``): a run made with ``--set`` on its own plugins
    re-plans to the same key. The data, reference plugins, attacks and metrics of others are planned as the
    suite plans them (``_SuitePlan``): a run that changed them does not re-plan."""
    specs = [(fam, params[f]) for f, fam in CELL_FAMILIES.items() if params.get(f)]
    specs += [("metric", m) for m in params.get("metrics") or []]
    out: dict[str, dict[str, Any]] = {}
    for family, spec in specs:
        if (family, spec["name"]) in own and spec.get("params"):
            out.setdefault(spec["name"], {}).update(spec["params"])
    return out


def _replan(b: dict[str, Any], claimed: CellRecord, registry: Any) -> tuple[Any, Any, str]:
    """The bundle's suite planned with the installed plugins, the planned cell whose key is the claimed one
    and, when there is none, what differs. Tried as the suite plans it, then with the parameters the claimed
    cell records (``_recorded_sets``), so that a bundle of a run with ``--set`` can be re-run."""
    from dememo.params import structure
    from dememo.planning.planner import Filters, Planner
    from dememo.planning.suite import Suite

    suite = structure(b["suite"], Suite, "$")
    p = claimed.params
    names = lambda *specs: tuple(s["name"] for s in specs if s)  # noqa: E731
    filters = Filters(poisoner=names(p["poisoner"]), unlearner=names(p["unlearner"]),
                      attack=names(p["attack"], p["train_attack"]), metric=names(*p["metrics"]))
    planned: list[Any] = []
    for sets in ({}, _recorded_sets(p, owning_plugins(b))):
        try:
            planner = Planner(registry, suite, sets, own_tuning=False)
            cells = planner.cells(filters, seeds=p["seed"] + 1)
        except UserError:
            if not sets:  # an unknown plugin name, a suite the installed dememo cannot read
                raise
            continue  # a recorded parameter the installed plugin lacks: _mismatch names it
        for cell in cells:
            if cell.key == claimed.key:
                return planner, cell, ""
        planned = planned or cells
    return None, None, _mismatch(b, claimed, registry, planned)



def _mismatch(b: dict[str, Any], claimed: CellRecord, registry: Any, planned: list[Any]) -> str:
    """Exactly what keeps the installed plugins from reproducing a claimed cell: a plugin not installed, its
    installed version against the bundle's, a recorded parameter it does not have, else the parameters in
    which the closest planned cell differs."""
    from dememo.params import field_names

    p, dist, claimed_by = claimed.params, b["plugin"], claimed_plugins(b)
    specs = [(family, p[field]) for field, family in CELL_FAMILIES.items() if p.get(field)]
    specs += [("metric", m) for m in p["metrics"]]
    specs += [(k, p["data"][k]) for k in ("dataset", "architecture") if isinstance(p.get("data", {}).get(k), dict)]
    found = []
    for family, spec in specs:
        info = registry.classes.get(family, {}).get(spec["name"])
        theirs = f" ({dist['distribution']} {dist['version']})" if (family, spec["name"]) in claimed_by else ""
        if info is None:
            found.append(f"{family} {spec['name']}{theirs} is not installed here")
        elif info.cls.version != spec["version"]:
            found.append(f"{family} {spec['name']}: installed version {info.cls.version!r} (from {info.distribution} "
                         f"{info.dist_version}), the bundle's cell has version {spec['version']!r}{theirs}")
        else:
            unknown = sorted(set(spec.get("params") or {}) - set(field_names(info.cls)))
            if unknown:
                found.append(f"{family} {spec['name']}: the bundle records parameter {unknown[0]!r}, which the "
                             f"installed version {info.cls.version!r} (from {info.distribution} {info.dist_version}) "
                             "does not have")
    if not found:
        same = [c for c in planned if c.track == claimed.track and c.seed == claimed.seed] or planned
        diffs = [_leaf_diffs(json.loads(canonical_bytes(c.config())), p, "") for c in same]
        found = min(diffs, key=len) if diffs else ["no installed configuration plans a cell of its row"]
    return _few(found)


def _installed_note(b: dict[str, Any], registry: Any) -> str:
    dist = b["plugin"]
    for p in b["plugins"]:
        info = registry.classes.get(p["family"], {}).get(p["name"])
        if info is None:
            return f"; {p['family']} {p['name']} of {dist['distribution']} is not installed here"
        if info.distribution != dist["distribution"] or info.dist_version != dist["version"]:
            return (f"; installed here: {p['name']} from {info.distribution} {info.dist_version}, "
                    f"bundle: {dist['distribution']} {dist['version']}")
    return ""


def rerun_checks(b: dict[str, Any], k: int, abs_tol: float = ABS_TOL, rel_tol: float = REL_TOL,
                 seed: int | None = None, keys: list[str] | None = None, cache_dir: Path | None = None,
                 runner_factory: Callable[[Any, Path], Any] | None = None, device: Any = "cpu",
                 data_dir: Any = None) -> list[Check]:
    """Re-run ``k`` sampled cells (or the cells ``keys``) from the bundle's suite with the installed plugins
    and compare every metric within the tolerance. A cell whose key no installed configuration reproduces
    fails without running."""
    from dememo import plugins

    registry = plugins.get_registry()
    by_key = {c["key"]: c for c in b["cells"]}
    if keys:
        unknown = [key for key in keys if key not in by_key]
        if unknown:
            raise UserError(f"the bundle has no cell {unknown[0]}")
        picked, how = [by_key[key] for key in keys], "cells named with --cell"
    else:
        seed = secrets.randbits(32) if seed is None else seed
        picked, how = pick_cells(b, k, seed), f"drawn with --rerun-seed {seed}"
        if k and not picked:
            return [Check("rerun", False, f"no finished cell of {b['plugin']['distribution']}'s own plugins, nor one with "
                                          "numbers, to re-run (a bundle's own rows use a plugin it lists under `plugins`)")]
    rule = tolerance_text(abs_tol, rel_tol)
    if runner_factory is None:
        runner_factory = _Rerunner(device, data_dir, recorded_threads(b))
    tmp = None
    if cache_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="dememo-verify-")
        cache_dir = Path(tmp.name)
    out = []
    try:
        for claimed in records(picked):
            name = f"rerun {claimed.key[:12]}"
            what = f"{claimed.method} @{claimed.attack} ({claimed.dataset}, seed {claimed.seed})"
            try:
                planner, cell, why = _replan(b, claimed, registry)
            except UserError as exc:  # an unknown plugin name, a suite the installed dememo cannot read
                out.append(Check(name, False, f"cell {claimed.key} cannot be re-planned here: {exc}"))
                continue
            if cell is None:
                dist = b["plugin"]
                out.append(Check(name, False, f"cell {claimed.key} cannot be re-planned here: plugin "
                                              f"{dist['distribution']} version {dist['version']} is not installed or "
                                              f"its parameters differ{_installed_note(b, registry)}: {why}"))
                continue
            try:
                record = runner_factory(planner, cache_dir).run_cell(cell)
            except UserError as exc:  # e.g. a dataset whose files are not here
                out.append(Check(name, False, f"cell {claimed.key} cannot be re-run here: {exc}"))
                continue
            diffs = compare(claimed, record, b["columns"].get(claimed.track, {}), abs_tol, rel_tol)
            n = len([c for c in claimed.metrics if not b["columns"].get(claimed.track, {}).get(c, {}).get("wall_clock")])
            if diffs:
                out.append(Check(name, False, f"{what}: recomputed values differ ({rule}): {_few(diffs)}"))
            else:
                out.append(Check(name, True, f"{what}: {n} metrics recomputed within tolerance ({rule}); {how}"))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out


def recorded_threads(b: dict[str, Any]) -> int | None:
    """The intra-op thread count the bundle's run recorded (1 to 256), else None (the default applies)."""
    env = b.get("environment")
    threads = env.get("threads") if isinstance(env, dict) else None
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and 1 <= threads <= 256 else None


class _Rerunner:
    """The default ``runner_factory``: ``_Rerunner(device, data_dir)(planner, cache_dir).run_cell(cell)``
    re-runs a cell with the installed plugins (tests put a fake with the same two calls in its place)."""

    def __init__(self, device: Any, data_dir: Any, threads: int | None = None):
        self.device, self.data_dir, self.threads, self.runner = device, data_dir, threads, None

    def __call__(self, planner: Any, cache_dir: Path) -> _Rerunner:
        import torch

        from dememo.progress import Progress
        from dememo.engine.cache import Store
        from dememo.engine.devices import prepare_process
        from dememo.engine.runner import Runner

        prepare_process(self.threads)  # the bundle's run's count (results depend on it), else $DEMEMO_THREADS or 1
        self.runner = Runner(Store(cache_dir), torch.device(self.device), Progress(show=False), data_dir=self.data_dir,
                             planner=planner)
        return self

    def run_cell(self, cell: Any) -> CellRecord:
        from dememo.engine.cell import run_cell

        return run_cell(self.runner, cell)


def verify(b: dict[str, Any], rerun: int = 0, tolerance: float = ABS_TOL, rel_tolerance: float = REL_TOL,
           runner_factory: Callable[[Any, Path], Any] | None = None, cache_dir: Path | None = None,
           seed: int | None = None, keys: list[str] | None = None, device: Any = "cpu",
           data_dir: Any = None) -> list[Check]:
    """Every check on a bundle: schema, content hash, cell keys, metric values and series, suite,
    plugin versions, reference rows; with ``rerun=K`` (or ``keys``) also re-runs of K sampled cells.
    Re-runs happen only when the bundle passes its schema."""
    checks = check_bundle(b)
    if (rerun or keys) and checks[0].ok:
        checks += rerun_checks(b, rerun, tolerance, rel_tolerance, seed=seed, keys=keys, cache_dir=cache_dir,
                               runner_factory=runner_factory, device=device, data_dir=data_dir)
    return checks
