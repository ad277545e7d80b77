"""A run's session: check the plan, load its datasets, run its cells (here or in workers) and keep every
finished record, whatever stops the run; what is written and printed from the outcome is the CLI's."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from dememo import plugins, results
from dememo.errors import DatasetError, StorageError, UserError
from dememo.params import printable
from dememo.planning.planner import Planner
from dememo.progress import Progress, RunBar
from dememo.results.record import CellRecord
from dememo.engine.cell import run_cell
from dememo.engine.executors import RunSpec
from dememo.engine.memo import NotCached
from dememo.engine.runner import Runner

#: plans above this many cells need --yes (the shipped suites plan 2,000 to 3,000 cells; paper-scale ones a few
#: thousand): a typo in a suite's variants or seeds should not start a week-long run unannounced
LARGE_PLAN = 20_000


def check_plan_size(cells: list[Any], yes: bool) -> None:
    """Refuse a plan above ``LARGE_PLAN`` cells unless ``yes``, saying how large it is and how to narrow it."""
    if len(cells) <= LARGE_PLAN or yes:
        return
    datasets = len({c.data.name for c in cells})
    seeds = len({c.seed for c in cells})
    methods = len({c.method for c in cells})
    raise UserError(f"this plan has {len(cells):,} cells ({datasets} dataset(s), {seeds} seed(s), {methods} method(s) and "
                    f"their attacks), over the {LARGE_PLAN:,} that run without asking; pass --yes to run it, or narrow "
                    "it with --seeds, --poisoner, --unlearner, --attack or --metric")


def columns_meta(registry: plugins.Registry) -> dict[str, Any]:
    """Every installed metric's column declarations by track, as results.json records them (``Column.to_json``:
    the table keys plus ``long_label``, ``plots`` and ``tuning``, which the report and the tuner interpret)."""
    out: dict[str, Any] = {}
    for name in registry.names("metric"):
        cls = registry.get("metric", name)
        for track in cls.tracks:  # type: ignore[attr-defined]
            for col, c in cls.columns.items():  # type: ignore[attr-defined]
                out.setdefault(track, {})[col] = c.to_json(name)  # with its figures (plots) and tuning role
    return out


def load_datasets(runner: Runner, planner: Planner, suite: Any, cells: list[Any]) -> None:
    """Load every planned dataset before any work. One that cannot load is named in a warning and its cells
    fail with that reason while the other datasets run; when none can load, nothing could run: its one-line
    error (naming the dataset plugin and what to do, e.g. --download) stops the run."""
    planned = [e for e in suite.datasets if any(c.data.name == e.name for c in cells)]
    failures: list[tuple[Any, DatasetError]] = []
    for entry in planned:
        try:
            runner.env(planner.dataset_config(entry))
        except DatasetError as exc:
            failures.append((entry, exc))
    if failures and len(failures) == len(planned):
        raise failures[0][1]
    for entry, exc in failures:
        n = sum(c.data.name == entry.name for c in cells)
        print(f"dememo-bench: warning: {printable(str(exc))}; its {n} cells fail, the other datasets run", file=sys.stderr)


@attrs.frozen
class Workers:
    """Cells run outside this process: ``jobs`` local worker processes (``local``) or Ray tasks."""

    spec: RunSpec
    local: bool
    cell_timeout: float | None = None
    cell_memory: int | None = None  # bytes
    address: str | None = None
    jobs: int = 1


@attrs.define
class Outcome:
    """What running the planned cells left: every finished record (keyed by cell key), the ones whose own file
    could not be written, how many came whole from the cache, and why the run stopped early if it did."""

    records: dict[str, CellRecord] = attrs.field(factory=dict)
    unsaved: list[str] = attrs.field(factory=list)
    elapsed: float = 0.0
    cached: int = 0  # cells served whole from the cache before any was computed
    interrupted: bool = False  # Ctrl-C or SIGTERM
    stopped: UserError | None = None  # a full disk, or a worker that cannot run this plan: what is finished is on disk
    crashed: Exception | None = None  # a bug that escaped every cell's guard

    @property
    def partial(self) -> bool:
        return self.interrupted or self.stopped is not None or self.crashed is not None


#: told, once the cached cells are served, which were (their keys), which are left to compute and whether the
#: cache was read at all (a Ray driver leaves that to its tasks); returns each left cell's estimated cost in
#: seconds (the progress bar's weights) or None
Announce = Callable[[set[str], list[Any], bool], "dict[str, float] | None"]


def execute(cells: list[Any], runner: Runner, out: Path, progress: Progress, workers: Workers | None = None,
            announce: Announce | None = None) -> Outcome:
    """Run ``cells`` (in this process with ``runner``, or by ``workers``), writing each finished record to
    ``out/cells/`` at once (resume relies on it). Cells whose every stage is cached are served first, here
    (a warm re-run costs milliseconds a cell, and a resumed or widened run computes only its new cells);
    ``announce`` is then told what is left. Never raises for an interrupt, a storage error or a crash: the
    outcome says which, with every record finished before it."""
    outcome = Outcome()
    started = time.perf_counter()
    bar: RunBar | None = None

    def finished(record: CellRecord) -> None:
        outcome.records[record.key] = record  # in results.json even when its cell file cannot be written
        if bar is not None:
            bar.finished(record.key)
        try:
            results.write_cell(out, record)
        except StorageError:
            outcome.unsaved.append(record.key)
            raise

    try:
        probe = workers is None or workers.local  # a Ray driver leaves even the cached cells to its tasks
        left = _here(runner, cells, finished, probe=True) if probe else cells
        served = {k for k, r in outcome.records.items() if r.ok}  # a failed record (a dataset that cannot load) is no hit
        outcome.cached = len(served)
        weights = announce(served, left, probe) if announce is not None else None
        bar = RunBar(progress, len(left), weights)
        if workers is None:
            runner.memo.on_stage = lambda key, name, begun: bar.stage(name, begun)  # type: ignore[union-attr]
            _here(runner, left, finished, bar)
        elif left:
            runner.drop_shared()  # the workers load their own datasets and models
            for _ in _in_workers(workers, left, finished, bar):
                pass
    except KeyboardInterrupt:
        outcome.interrupted = True
    except UserError as exc:  # a StorageError, or a worker's (plugins that differ, a worker that cannot start)
        outcome.stopped = exc
    except Exception as exc:  # noqa: BLE001 - kept, written as partial results, then re-raised by the caller
        outcome.crashed = exc
    finally:
        runner.memo.on_stage = None
        if bar is not None:
            bar.close()
    outcome.elapsed = time.perf_counter() - started
    return outcome


def _here(runner: Runner, cells: list[Any], finished: Callable[[CellRecord], None], bar: RunBar | None = None,
          probe: bool = False) -> list[Any]:
    """Run ``cells`` in this process. With ``probe``, only those whose stages are all cached (the memo's
    probing: a stage that would have to be computed stops the cell, no plugin runs), returning the rest. The
    records are those a worker would return."""
    left = []
    runner.memo.probing = probe
    try:
        for cell in cells:
            if bar is not None:
                bar.doing(f"{cell.data.name}: {cell.method} @{cell.attack.label}")
            try:
                record = run_cell(runner, cell)
            except NotCached:
                left.append(cell)
                continue
            finished(record)
    finally:
        runner.memo.probing = False
    return left


def _in_workers(workers: Workers, cells: list[Any], finished: Callable[[CellRecord], None], bar: RunBar) -> Any:
    from dememo.engine.executors import run_ray
    from dememo.engine.isolation import run_isolated

    if workers.local:
        return run_isolated(workers.spec, cells, workers.cell_timeout, workers.cell_memory, finished, workers.jobs,
                            on_tick=lambda text: bar.doing(text, timed=False, show=False))
    return run_ray(workers.spec, cells, workers.address, finished)
