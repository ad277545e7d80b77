"""What a plan will cost before it runs: a per-stage cost model and the stages a set of cells would compute.

**Stages.** A cell's work is a chain of stages — poison, training, learner-side attack, retraining,
memorization scores, unlearning, model-stage attack, one stage per metric — and cells share them (one
original training serves every unlearner of a seed). :func:`cell_stages` names each stage a cell needs by
what defines it in the runner's cache key (dataset, seed, plugin label, the data it trains on, the forget
set, the model a metric reads), so stages shared across cells are counted once. The names are built from the
plan alone, without loading data: a poisoner the suite lists as a reference (``none``) leaves the data
clean, as the runner finds it does.

**Costs.** A stage's cost is looked up by dataset and architecture (``digits/mlp``) and stage
(``train``, ``poison:tap``, ``unlearn:scrub@random``, ``attack:relearn``, ``metric:depth@unlearning``,
...), falling back to the plugin's name without its parameters, then to the median of its kind on that
dataset, then on any dataset, then to :data:`FALLBACK_SECONDS`. Each key holds a typical cost and a *once*
cost: what the first stage of a seed pays beyond the typical one (a metric whose first row trains the
shadow models every later row reads) — learnt as the median, over seeds, of the largest minus the median
cost of that seed. The table comes from two sources, the first that has a key winning:

1. ``<cache>/costs.json``: what this machine measured, written after every run from the stages it computed;
2. ``dememo/suites/costs.json``: shipped, measured on a 2-core CPU with one thread per worker
   (``tools/stage_costs.py`` builds it from a cold run's results.json).

:func:`compute_seconds` measures a finished run in the same unit the estimate predicts: the seconds of the
stages it computed (not those read from the cache).
"""

from __future__ import annotations

import functools
import json
import logging
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

import attrs

from dememo import files
from dememo.planning.planner import Cell
from dememo.results.record import CellRecord

log = logging.getLogger("dememo.costs")

SCHEMA = "dememo.costs/1"
#: a stage with no timing anywhere (an unknown kind on an unknown dataset): a guess, said as one
FALLBACK_SECONDS = 5.0
#: the most recent measurements kept per key in the cache's cost file
KEEP = 25
#: where a cache keeps its measurements
CACHE_FILE = "costs.json"


def kind_of(key: str) -> str:
    """``unlearn:scrub@random`` → ``unlearn``."""
    return key.split(":", 1)[0].split("@", 1)[0]


def _bare(label: str) -> str:
    return label.split("(", 1)[0]


def fallbacks(key: str) -> list[str]:
    """The keys tried for ``key``, most specific first: the label with its qualifier (``@random``), the label
    alone, the plugin's name alone."""
    out = [key]
    head, _, qualifier = key.partition("@")
    kind, _, label = head.partition(":")
    if qualifier:
        out.append(head)
    if label and _bare(label) != label:
        out += [f"{kind}:{_bare(label)}@{qualifier}" if qualifier else None, f"{kind}:{_bare(label)}"]  # type: ignore[list-item]
    return [k for k in dict.fromkeys(out) if k]


# -- what a cell computes -----------------------------------------------------------------------------


def context_of(dataset: str, architecture: str | None) -> str:
    return f"{dataset}/{architecture or '?'}"


@attrs.frozen
class Stage:
    """One stage a plan needs: ``ident`` says which (equal for the cells that share it), ``key`` how to cost
    it, ``once`` whether it is the seed's one-off share of ``key`` (see the module)."""

    ident: tuple
    context: str
    key: str
    once: bool = False


def _forget_kind(cell: Cell) -> str:
    return "interplay" if cell.owner is not None else (cell.forget.kind if cell.forget else "none")


def cell_stages(cell: Cell, reference_poisoners: Iterable[str] = ()) -> list[Stage]:
    """The stages ``cell`` needs, named so that cells sharing a stage name it alike (see the module)."""
    ctx = context_of(cell.data.name, cell.data.architecture.label)
    at = (cell.data.name, cell.seed)
    out: list[Stage] = []

    def add(ident: tuple, key: str) -> None:
        out.append(Stage((*at, *ident), ctx, key))
        out.append(Stage((*at, "once", key), ctx, key, once=True))

    clean = ("clean",)
    data = clean
    if cell.poisoner is not None:
        p = cell.poisoner.label
        add(("poison", p), f"poison:{p}")
        if cell.poisoner.name not in set(reference_poisoners):
            data = ("poisoned", p, cell.owner.share if cell.owner else None)
    refs: dict[str, tuple] = {"clean": clean, "original": data if cell.track == "interplay" else clean}
    if cell.track == "unlearnability":
        assert cell.train_attack is not None
        if cell.train_attack.name == "none":
            add(("train", data), "train")
            model: tuple = ("trained", data)
        else:
            ta = cell.train_attack.label
            add(("train-attack", ta, data), f"train-attack:{ta}")
            model = ("train-attack", ta, data)
        forget: tuple = ()
    else:
        assert cell.unlearner is not None
        forget = (cell.target, cell.owner.share) if cell.owner else (cell.forget.label(),)  # type: ignore[union-attr]
        add(("train", data), "train")
        # the clean target's retain set is drawn from the poisoned mixture: one retrain per poisoner
        refs["retrained"] = ("retain", forget, data if cell.owner is not None and cell.target == "clean" else clean)
        add(("train", refs["retrained"]), "train")
        if cell.forget is not None and cell.forget.kind == "memorization":
            add(("scores", cell.forget.scorer), f"scores:{cell.forget.scorer}")
        u = cell.unlearner.label
        add(("unlearn", u, data, forget), f"unlearn:{u}@{_forget_kind(cell)}")
        model = ("unlearned", u, data, forget)
    attacked = cell.attack.name != "none"
    if attacked:
        add(("attack", cell.attack.label, model), f"attack:{cell.attack.label}")
        model = ("attacked", cell.attack.label, model)
    for metric in cell.metrics:
        cls = type(metric.obj)
        try:
            needs = tuple(cls.needs_on(cell.track))  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - the run reports it; the estimate counts no reference
            needs = ()
        for name in needs:
            if name in refs:
                add(("train", refs[name]), "train")
        reads = getattr(cls, "reads_model", True)
        replays = getattr(cls, "replays", False) and cell.unlearner is not None
        ident = ("metric", metric.label, cell.track, model if reads else None, forget, data,
                 cell.unlearner.label if replays else None)  # type: ignore[union-attr]
        add(ident, f"metric:{metric.name}@{cell.track}" + ("/attacked" if attacked else ""))
    return out


# -- what a stage costs -------------------------------------------------------------------------------


def observations(record: CellRecord) -> Iterator[tuple[str, str, float, bool]]:
    """``(context, key, seconds, computed)`` for each stage timing of a finished cell (``computed``: the cell
    computed it rather than reading it from the cache). A stage many cells share is observed in each."""
    for ctx, key, seconds, computed, _ in _observed(record):
        yield ctx, key, seconds, computed


def _observed(record: CellRecord) -> Iterator[tuple[str, str, float, bool, str]]:
    """:func:`observations` with each stage's identity: its cache key where the timing records one, else its
    seconds (a stage read from the cache carries the seconds stored with it, the same in every cell)."""
    if not record.timings:
        return
    ctx = context_of(record.dataset, record.architecture)
    kind = ((record.params or {}).get("forget") or {}).get("kind") or "none"
    attacked = record.attack != "none"
    for name, info in record.timings.items():
        if name == "metrics" or not isinstance(info, dict) or "seconds" not in info:
            continue
        if name == "train" and record.track == "unlearnability" and record.train_attack not in (None, "none"):
            key = f"train-attack:{record.train_attack}"
        elif name == "train" or name.startswith("reference:"):
            key = "train"
        elif name == "scores":
            key = f"scores:{((record.params or {}).get('forget') or {}).get('scorer')}"
        elif name == "poison":
            key = f"poison:{record.poisoner}"
        elif name == "unlearn":
            key = f"unlearn:{record.unlearner}@{kind}"
        elif name == "attack":
            if not attacked:
                continue
            key = f"attack:{record.attack}"
        elif name.startswith("metric:"):
            key = f"{name}@{record.track}" + ("/attacked" if attacked else "")
        else:
            continue
        yield ctx, key, float(info["seconds"]), not info.get("cached", True), str(info.get("key") or info["seconds"])


def summarise(records: Iterable[CellRecord]) -> dict[str, dict[str, list[float]]]:
    """Per context and key, ``[typical, once, n]`` from finished cells (cached stages included: they carry
    the seconds of their computation; a stage shared by many cells counts once): the median cost and the median over seeds of the largest minus the
    median (see the module); every key also feeds its fallbacks and its kind (``unlearn:*``)."""
    by_seed: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    seen: set[tuple[str, str, int, str]] = set()
    for r in records:
        for ctx, key, seconds, _, ident in _observed(r):
            if (ctx, key, r.seed, ident) in seen:  # a shared stage is one stage, not one per cell reading it
                continue
            seen.add((ctx, key, r.seed, ident))
            for k in [*fallbacks(key), f"{kind_of(key)}:*"]:
                by_seed[(ctx, k, r.seed)].append(seconds)
    grouped: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for (ctx, key, _), values in by_seed.items():
        typical = statistics.median(values)
        grouped[(ctx, key)].append((typical, max(values) - typical))
    out: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for (ctx, key), pairs in grouped.items():
        out[ctx][key] = [round(statistics.median(p[0] for p in pairs), 4),
                         round(statistics.median(p[1] for p in pairs), 4) if not key.endswith(":*") else 0.0,
                         len(pairs)]
    return dict(out)


@attrs.define
class CostTable:
    """Costs by context and key, ``[typical, once, n]`` (:func:`summarise`), with where they came from."""

    table: dict[str, dict[str, list[float]]] = attrs.field(factory=dict)
    source: str = "none"

    def lookup(self, context: str, key: str, kinds: bool = True) -> tuple[list[float], str] | None:
        """The entry for ``key`` on ``context`` and how it was found (``exact``, ``plugin``, and with ``kinds``
        ``kind``, ``kind on other datasets``), or None."""
        here = self.table.get(context, {})
        for i, k in enumerate(fallbacks(key)):
            if k in here:
                return here[k], "exact" if i == 0 else "plugin"
        if not kinds:
            return None
        kind = f"{kind_of(key)}:*"
        if kind in here:
            return here[kind], "kind"
        others = [t[kind][0] for c, t in self.table.items() if c != context and kind in t]
        if others:
            return [statistics.median(others), 0.0, len(others)], "kind on other datasets"
        return None


@functools.cache
def shipped_table() -> CostTable:
    """The costs measured when dememo was released (``dememo/suites/costs.json``)."""
    try:
        raw = json.loads(resources.files("dememo.suites").joinpath("costs.json").read_text())
        return CostTable(raw["contexts"], raw.get("measured_on", "shipped"))
    except (OSError, ValueError, KeyError):
        return CostTable()


def _cache_file(root: Path) -> Path:
    return Path(root) / CACHE_FILE


def _read_devices(root: Path) -> dict[str, dict[str, dict[str, list[float]]]]:
    """The cache's cost file as device → context → key → seconds, keeping only entries of that shape (a
    damaged or foreign file reads as empty: it only calibrates estimates)."""
    try:
        raw = json.loads(_cache_file(root).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    devices = raw.get("devices") if isinstance(raw, dict) and raw.get("schema") == SCHEMA else None
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for device, contexts in (devices.items() if isinstance(devices, dict) else ()):
        for ctx, keys in (contexts.items() if isinstance(contexts, dict) else ()):
            for key, values in (keys.items() if isinstance(keys, dict) else ()):
                if isinstance(values, list) and values and all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1e9 for v in values):
                    out.setdefault(str(device), {}).setdefault(str(ctx), {})[str(key)] = [float(v) for v in values]
    return out


def local_samples(root: Path, device: str) -> dict[str, dict[str, list[float]]]:
    """The seconds this cache's runs measured on ``device`` (``cpu``, ``cuda``), by context and key."""
    return _read_devices(root).get(device, {})


def local_table(root: Path, device: str) -> CostTable:
    """This cache's measurements as a table (typical = median of the kept samples; no once-costs: the run
    that computed a seed's shared work is one sample among many)."""
    samples = local_samples(root, device)
    table: dict[str, dict[str, list[float]]] = {}
    for ctx, keys in samples.items():
        for key, values in keys.items():
            if isinstance(values, list) and values:
                table.setdefault(ctx, {})[key] = [statistics.median(values), 0.0, len(values)]
    return CostTable(table, f"this machine's runs ({_cache_file(root)})")


def record_costs(root: Path, records: Iterable[CellRecord], device: str) -> None:
    """Add the stages ``records`` computed to the cache's cost file (the last :data:`KEEP` per key). Best
    effort: a cache that cannot be written only loses the calibration, never a result."""
    fresh: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for ctx, key, seconds, computed in observations(r):
            if computed:
                for k in [*fallbacks(key), f"{kind_of(key)}:*"]:
                    fresh[ctx][k].append(round(seconds, 4))
    if not fresh:
        return
    devices = _read_devices(root)
    mine = devices.setdefault(device, {})
    for ctx, keys in fresh.items():
        for key, values in keys.items():
            kept = mine.setdefault(ctx, {}).get(key) or []
            mine[ctx][key] = [*kept, *values][-KEEP:]
    try:
        files.atomic_write_json(_cache_file(root), {"schema": SCHEMA, "devices": devices})
    except Exception as exc:  # noqa: BLE001 - the calibration is best effort: never a run's failure
        log.debug("cost file not written: %s", exc)


@attrs.frozen
class Estimate:
    """What the stages to compute are expected to cost: ``seconds`` in all, per stage kind, how many stages,
    and which costs were guesses (no measurement of that kind on that dataset)."""

    seconds: float
    by_kind: dict[str, float]
    stages: dict[str, int]
    guessed: tuple[str, ...]
    sources: tuple[str, ...]


def estimate(cells: Iterable[Cell], cached: set[str], tables: list[CostTable],
             reference_poisoners: Iterable[str] = ()) -> tuple[Estimate, dict[str, float]]:
    """The estimate of computing ``cells`` whose keys are not in ``cached``, and each such cell's share
    (its stages not counted for an earlier cell: a progress bar weighted by cost). Stages of the cached
    cells count as computed already."""
    cells = list(cells)
    refs = tuple(reference_poisoners)
    done: set[tuple] = set()
    for cell in cells:
        if cell.key in cached:
            done.update(s.ident for s in cell_stages(cell, refs))
    by_kind: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    guessed: set[str] = set()
    used: set[str] = set()
    shares: dict[str, float] = {}
    for cell in cells:
        if cell.key in cached:
            continue
        share = 0.0
        for stage in cell_stages(cell, refs):
            if stage.ident in done:
                continue
            done.add(stage.ident)
            seconds = None
            # a measurement of this stage in any table before a guess from its kind in any
            for table, kinds in [(t, False) for t in tables] + [(t, True) for t in tables]:
                found = table.lookup(stage.context, stage.key, kinds)
                if found is not None:
                    (typical, once, _), how = found
                    seconds = once if stage.once else typical
                    used.add(table.source)
                    if how.startswith("kind"):
                        guessed.add(f"{stage.key} on {stage.context}")
                    break
            if seconds is None:
                seconds = 0.0 if stage.once else FALLBACK_SECONDS
                if not stage.once:
                    guessed.add(f"{stage.key} on {stage.context}")
            if not stage.once:
                counts[kind_of(stage.key)] += 1
            by_kind[kind_of(stage.key)] += seconds
            share += seconds
        shares[cell.key] = share
    total = sum(by_kind.values())
    return Estimate(total, dict(by_kind), dict(counts), tuple(sorted(guessed)), tuple(sorted(used))), shares


def compute_seconds(records: Iterable[CellRecord]) -> float:
    """The seconds of the stages a run computed (the unit the estimate predicts)."""
    return sum(seconds for r in records for _, _, seconds, computed in observations(r) if computed)


def results_compute(records: Iterable[CellRecord]) -> float | None:
    """The seconds of computation behind ``records``: every distinct stage their timings name (by cache key),
    whether this run computed it or read it from the cache; None when no timing carries a key (results of an
    older dememo, or bundles, which leave the timings out). A stage computed inside another (a training a
    metric asked for) is counted in both."""
    seen: dict[str, float] = {}
    for r in records:
        for name, info in (r.timings or {}).items():
            if name != "metrics" and isinstance(info, dict) and info.get("key"):
                seen[str(info["key"])] = float(info.get("seconds") or 0.0)
    return sum(seen.values()) if seen else None
