"""A run from its options to its written results: plan the cells, load their datasets, run them (here or in
workers) and write ``results.json`` with the leaderboards, whatever stops the run. The command line and the
Python API both go through :class:`Launch`; what each says about the outcome is its own."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import torch

from dememo import interrupts, plugins, results
from dememo.api.options import RunOptions, default_cache_dir, for_smoke
from dememo.board.writer import write_outputs
from dememo.engine.cache import Store
from dememo.engine.costs import (CostTable, Estimate, compute_seconds, estimate, local_table, record_costs,
                                 results_compute, shipped_table)
from dememo.engine.devices import count_setting, default_jobs, prepare_process, resolve_device, set_deterministic
from dememo.engine.executors import RunSpec
from dememo.engine.external import external_cells
from dememo.engine.runner import Runner
from dememo.engine.session import Outcome, Workers, check_plan_size, columns_meta, execute, load_datasets
from dememo.environment import fingerprint
from dememo.errors import StorageError, UserError, storage_advice
from dememo.planning.planner import Cell, Planner
from dememo.planning.suite import Suite, load_suite
from dememo.progress import Progress, duration


@contextlib.contextmanager
def caller_settings() -> Iterator[None]:
    """Leave the calling process's torch thread count as it was: a run sets its own (``--threads``), and a
    notebook that trains after ``dememo.run`` should not find itself on one thread."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def saved_note(out: Path, done: int, unsaved: int) -> str:
    """What is true of the per-cell files (resume relies on them): said only when it is so."""
    if not done:
        return "no cell had finished"
    if not unsaved:
        return f"the {done} finished cells are saved one file each in {out / 'cells'}"
    return f"{done - unsaved} of the {done} finished cells are saved in {out / 'cells'} ({unsaved} could not be written)"


def written_note(out: Path, written: Path) -> str:
    """Where a partial set went, and why not to ``out`` when it did not."""
    if written == out:
        return str(out)
    return f"{written} (the complete results.json of an earlier run in {out} is kept)"


@attrs.define
class Finished:
    """A run's end: the results document written, where it went, and what stopped the run early if anything
    did (``outcome``)."""

    data: dict[str, Any]
    out: Path
    written: Path
    outcome: Outcome
    cells: int  # planned
    computed: int | None  # stages computed in this process (None when cells ran in workers)
    late_signal: bool = False  # an interrupt came after the last cell, while the results were written

    @property
    def where(self) -> str:
        return written_note(self.out, self.written)

    @property
    def saved(self) -> str:
        return saved_note(self.out, len(self.outcome.records), len(self.outcome.unsaved))


class Launch:
    """One run: its options checked, the suite planned and the process prepared (device, threads). The
    cache and output directories are created and the datasets loaded by :meth:`open`, which both
    :meth:`preview` (``dememo-bench plan``) and :meth:`execute` need."""

    def __init__(self, options: RunOptions, registry: plugins.Registry | None = None):
        self.registry = registry or plugins.get_registry()
        self.suite: Suite = load_suite(options.suite)
        if options.smoke:  # from here on a plain run (workers re-plan from its filters)
            options = for_smoke(options, self.suite.references)
        self.options = options
        if options.deterministic:
            set_deterministic()
        self.device: torch.device = resolve_device(options.device)
        self.threads = prepare_process(options.threads)
        local = options.executor == "local"
        self.jobs = count_setting("--jobs", options.jobs, "DEMEMO_JOBS", default_jobs(self.device)) if local else 1
        self.planner = Planner(self.registry, self.suite, options.sets)
        self.cells: list[Cell] = self.planner.cells(options.filters, seeds=options.seeds)
        if options.external is not None:  # an external model's rows, at the seed it was exported at
            seed = options.external["seed"]
            self.cells = [c for c in self.cells if c.seed == seed] + external_cells(
                self.planner, options.external, options.filters, options.seeds)
        if not self.cells:
            given = [f"--{k.rstrip('s') if k != 'forget' else k} {' '.join(v)}" for k, v in
                     (("poisoners", options.poisoners), ("unlearners", options.unlearners), ("attacks", options.attacks),
                      ("metrics", options.metrics), ("datasets", options.datasets), ("forget", options.forget),
                      ("tracks", options.tracks)) if v]
            raise UserError(f"the filters leave no cell to run ({'; '.join(given) or 'none given'}): suite "
                            f"{self.suite.name!r} pairs them nowhere (its grid limits where metrics, attacks and "
                            "the interplay track run); 'dememo-bench plan' without one of them shows what it has")
        for note in [*self.planner.skipped.values(), *self.planner.notes]:  # one plugin never stops the others
            print(f"dememo-bench: warning: {note}", file=sys.stderr)
        check_plan_size(self.cells, options.yes)
        self.jobs = min(self.jobs, len(self.cells))
        # absolute from here on: a plugin that changes the working directory cannot move where results go
        self.out = (options.out or Path("dememo-results") / self.suite.name).absolute()
        self.cache = (options.cache_dir or default_cache_dir()).absolute()
        self.data_dir = None if options.data_dir is None else options.data_dir.absolute()
        self.store = Store(self.cache)
        self.progress = Progress(show=options.progress)
        self.runner: Runner | None = None
        self.estimated: float | None = None  # the compute the announced estimate expected, in seconds

    # -- what runs where ---------------------------------------------------------------------------

    @property
    def isolated(self) -> bool:
        return self.options.executor == "ray" or self.options.isolated or self.jobs > 1

    def where(self) -> str:
        """Where the cells run, in words."""
        if self.options.executor == "ray":
            where = "Ray tasks"
        elif self.jobs == 1 and not self.options.isolated:
            where = "this process"
        else:
            where = f"{self.jobs} worker process{'es' if self.jobs > 1 else ''}"
        return f"{where} of {self.threads} thread{'s' if self.threads > 1 else ''}"

    def open(self, need_output: bool = True) -> Runner:
        """Create the cache (and with ``need_output`` the output) directory, and load every planned dataset
        (one that cannot load is a warning and its cells fail; none loading is its one-line error)."""
        if self.runner is not None:
            return self.runner
        try:
            if need_output:
                self.out.mkdir(parents=True, exist_ok=True)
            self.store.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create output or cache directory: {exc}") from None
        self.store.sweep()  # temporaries of writers killed long ago
        self.runner = Runner(self.store, self.device, self.progress, data_dir=self.data_dir,
                             download=self.options.download, planner=self.planner)
        load_datasets(self.runner, self.planner, self.suite, self.cells)
        return self.runner

    def _workers(self) -> Workers | None:
        if not self.isolated:
            return None
        o = self.options
        given = Path(o.suite)  # workers may start in another directory: paths are made absolute
        suite_ref = str(given.resolve()) if given.suffix == ".toml" or given.exists() else o.suite
        spec = RunSpec(suite=suite_ref, sets=o.sets, filters=attrs.asdict(o.filters), seeds=o.seeds,
                       device=str(self.device), cache_dir=str(self.cache.resolve()),
                       data_dir=str(self.data_dir.resolve()) if self.data_dir else None, download=o.download,
                       deterministic=o.deterministic, threads=self.threads, external=o.external,
                       tuning=self.planner.tuning_records())
        memory = None if o.cell_memory is None else int(o.cell_memory * 2**30)
        return Workers(spec, o.executor == "local", o.cell_timeout, memory, o.address, self.jobs)

    # -- running -----------------------------------------------------------------------------------

    def plan_line(self) -> str:
        """The plan in one line, before anything is known of the cache: cells per track, datasets, seeds."""
        from collections import Counter

        tracks = Counter(c.track for c in self.cells)
        datasets = list(dict.fromkeys(c.data.name for c in self.cells))
        seeds = len({c.seed for c in self.cells})
        return (f"suite {self.suite.name!r}: {len(self.cells)} cells ("
                + ", ".join(f"{t} {n}" for t, n in tracks.items()) + f") on {', '.join(datasets)}, "
                f"{seeds} seed{'s' if seeds > 1 else ''}; device {self.device}, {self.where()}; cache {self.cache}")

    def cost_tables(self) -> list[CostTable]:
        """Where stage costs come from, the first that has one winning: this cache's measurements on this
        device, then the shipped ones (measured on a CPU; on an accelerator they bound the cost from above)."""
        return [local_table(self.cache, self.device.type), shipped_table()]

    def estimate(self, cached: set[str]) -> tuple[Estimate, dict[str, float]]:
        """The estimated cost of the planned cells not in ``cached``, and each one's share (``costs.estimate``)."""
        return estimate(self.cells, cached, self.cost_tables(), self.suite.references.get("poisoner", []))

    def _announce(self, cached: set[str], left: list[Cell], probed: bool = True) -> dict[str, float]:
        """Say what the cache holds and what the rest should cost; the cost of each cell left (the bar's weights)."""
        est, shares = self.estimate(cached)
        self.estimated = est.seconds
        if not left:
            failed = len(self.cells) - len(cached)
            note = f" ({failed} of them failed at once: see the end)" if failed else ""
            print(f"dememo-bench: all {len(self.cells)} cells served without computing{note}", file=sys.stderr)
            return shares
        if not probed:  # Ray's tasks read the cache themselves: the estimate is of the whole plan
            head = f"{len(left)} cells for Ray's tasks (what they find cached is not computed again)"
        elif cached:
            head = f"resuming: {len(cached)} cells cached, {len(left)} to run"
        else:
            head = f"{len(left)} cells to run"
        wall = est.seconds / max(1, self.jobs)
        print(f"dememo-bench: {head}; estimated compute {duration(est.seconds)} (about {duration(wall)} on "
              f"{self.jobs} worker{'s' if self.jobs > 1 else ''}; 'dememo-bench plan' shows the detail)", file=sys.stderr)
        return shares

    def execute(self, announce: bool = True) -> Finished:
        """Run the planned cells and write their results; with ``announce``, say on stderr what the cache holds
        and what the rest should cost once the cached cells are served. A storage error, a worker that cannot
        run this plan or an internal error is raised after the finished cells' results are written (the
        message says where); an interrupt is not raised: ``Finished.outcome.interrupted`` says so."""
        runner = self.open()
        outcome = execute(self.cells, runner, self.out, self.progress, self._workers(),
                          self._announce if announce else None)
        records = outcome.records
        with interrupts.deferred():  # a second Ctrl-C or a SIGTERM storm waits until the set is written
            signals = interrupts.pending()
            data = results.assemble(
                suite=self.suite.to_json(),
                environment={**fingerprint(self.device), "jobs": self.jobs if self.options.executor == "local" else None,
                             "wall_seconds": round(outcome.elapsed, 2), "cells_from_cache": outcome.cached,
                             "computed_seconds": round(compute_seconds(records.values()), 2),
                             "compute_seconds": _rounded(results_compute(records.values()))},
                plugins=[i.to_json() for i in self.registry.all()],
                columns=columns_meta(self.registry),
                cells=[r.to_json() for r in records.values()],
                failures=[f.to_json() for f in self.registry.failures],
                partial=(len(records), len(self.cells)) if outcome.partial else None,
            )
            try:
                written = write_outputs(self.out, data, self.suite.name)
            except OSError as exc:
                raise StorageError(f"cannot write results to {self.out}: {storage_advice(exc, '--out')}; no results "
                                   f"file there was changed; {saved_note(self.out, len(records), len(outcome.unsaved))}; "
                                   "then run the same command again (it resumes from the cache)") from None
            record_costs(self.cache, records.values(), self.device.type)  # calibrates later estimates; never raises
            done = Finished(data, self.out, written, outcome, len(self.cells),
                            None if self.isolated else self.store.writes)
            if outcome.crashed is not None:
                print(f"dememo-bench: an internal error stopped the run after {len(records)} of {len(self.cells)} "
                      f"cells; {done.saved}; partial results are in {done.where}. Please report the traceback "
                      "below.", file=sys.stderr)
                raise outcome.crashed
            if outcome.stopped is not None:
                stopped = outcome.stopped
                error = (StorageError if isinstance(stopped, StorageError) else UserError)(
                    f"{stopped} — results of the {len(records)} cells finished before it are written to "
                    f"{done.where}; {done.saved}")
                error.exit_code = stopped.exit_code
                raise error
            # every cell finished, then a Ctrl-C or SIGTERM came while the set was written (it is complete)
            done.late_signal = interrupts.pending() > signals
        return done


def announce_end(finished: Finished, estimated: float | None = None) -> None:
    """The line a run ends with on stderr: cells, time, cache use, the compute it did (beside the estimate
    announced before it, ``estimated`` seconds), failures and where the results are."""
    records = finished.outcome.records.values()
    failed = sum(r.status == "failed" for r in records)
    cached = sum(r.ok and all(t.get("cached", True) for k, t in r.timings.items() if k != "metrics") for r in records)
    stages = f", {finished.computed} stages computed here" if finished.computed is not None else ""
    did = finished.data.get("environment", {}).get("computed_seconds") or 0.0
    guess = f", estimated {duration(estimated)}" if estimated and did else ""
    print(f"\n{len(finished.outcome.records)} cells in {finished.outcome.elapsed:.1f}s ({cached} fully from cache"
          f"{stages}, {duration(did)} of stage compute{guess}), {failed} failed. Results: {finished.written}/"
          "results.json, leaderboard.md, leaderboard.csv, leaderboard.html", file=sys.stderr)
