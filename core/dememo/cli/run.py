"""``dememo-bench [--all]``: plan a suite with every installed plugin, run its cells, write the results and
print the leaderboard."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import attrs

from dememo import interrupts, plugins, results
from dememo.board import leaderboard
from dememo.board.writer import write_outputs
from dememo.environment import fingerprint
from dememo.errors import StorageError, UserError, storage_advice
from dememo.params import parse_sets
from dememo.plan.planner import Filters, Planner
from dememo.plan.suite import MAX_SEEDS, load_suite
from dememo.progress import Progress
from dememo.run.cache import Store
from dememo.run.devices import count_setting, default_jobs, prepare_process, resolve_device, set_deterministic
from dememo.run.executors import RunSpec
from dememo.run.runner import Runner
from dememo.run.session import LARGE_PLAN, Workers, check_plan_size, columns_meta, execute, load_datasets


def default_cache_dir() -> Path:
    if os.environ.get("DEMEMO_CACHE_DIR"):
        return Path(os.environ["DEMEMO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dememo"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dememo-bench",
        description="Benchmark model dememorization: unlearnable examples, machine unlearning and the attacks "
        "that show a model still knows its data.",
    )
    p.add_argument("--all", action="store_true", help="run every compatible combination of installed plugins")
    p.add_argument("--list", action="store_true", help="list installed plugins by family and exit")
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format of --list")
    p.add_argument("--suite", default="quick", help="shipped suite name or path to a suite .toml (default: quick)")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, mps (default: auto)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the suite's)")
    p.add_argument("--out", type=Path, default=None, help="results directory (default: ./dememo-results/<suite>)")
    p.add_argument("--cache-dir", type=Path, default=None, help="stage cache (default: $DEMEMO_CACHE_DIR or ~/.cache/dememo)")
    p.add_argument("--data-dir", type=Path, default=None, help="where dataset plugins look for files")
    p.add_argument("--download", action="store_true", help="let dataset plugins download missing files")
    for family in ("poisoner", "unlearner", "attack", "metric"):
        p.add_argument(f"--{family}", action="append", default=[], metavar="NAME",
                       help=f"only this {family} (repeatable; references stay)")
    p.add_argument("--set", action="append", default=[], metavar="PLUGIN.PARAM=VALUE",
                   help="override a hyper-parameter, e.g. --set finetune.lr=0.01 or --set recipe.epochs=5")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where cells run: in this process (default) or as Ray tasks, one per dataset and seed, "
                   "sharing --cache-dir (needs dememo[ray]; on a cluster, a path every node can reach)")
    p.add_argument("--address", default=None, help="with --executor ray: the cluster to join (default: start a local one)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="run cells in N worker processes sharing the cache (default: $DEMEMO_JOBS, else the usable CPU "
                   "cores on a CPU device and 1 on a GPU); --jobs 1 runs them in this process")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch intra-op threads per process (default: $DEMEMO_THREADS, else 1: small models gain "
                   "little from more and slow down badly beside other work; results depend on it)")
    p.add_argument("--isolate", action="store_true",
                   help="run cells in worker processes even with --jobs 1, so a plugin that crashes the interpreter, "
                   "hangs or leaks memory fails only its own cell (with --jobs N > 1 they always are)")
    p.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                   help="fail a cell that runs longer than this and go on (implies worker processes)")
    p.add_argument("--cell-memory", type=float, default=None, metavar="GIB",
                   help="fail a cell whose worker's resident memory exceeds this (Linux; implies worker processes)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels only (torch.use_deterministic_algorithms; slower on GPUs): the same "
                   "run on the same machine then gives bit-identical results")
    p.add_argument("--yes", action="store_true",
                   help=f"run a plan of more than {LARGE_PLAN:,} cells without asking (it is refused otherwise)")
    return p


def list_plugins(registry: plugins.Registry, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"plugins": [i.to_json() for i in registry.all()],
                           "load_failures": [f.to_json() for f in registry.failures]}, indent=2)
    lines = []
    for family in ("dataset", "architecture", "poisoner", "unlearner", "attack", "metric"):
        infos = [registry.classes[family][n] for n in registry.names(family)]
        lines.append(f"{family}s ({len(infos)}):")
        for i in infos:
            lines.append(f"  {i.cls.name:<20} v{i.cls.version:<5} {i.distribution:<22} {i.cls.summary()}")
    for f in registry.failures:
        lines.append(f"FAILED TO LOAD {f.plugin} ({f.distribution}): {f.error}")
    return "\n".join(lines)


def _saved_note(out: Path, done: int, unsaved: int) -> str:
    """What is true of the per-cell files (resume relies on them): said only when it is so."""
    if not done:
        return "no cell had finished"
    if not unsaved:
        return f"the {done} finished cells are saved one file each in {out / 'cells'}"
    return f"{done - unsaved} of the {done} finished cells are saved in {out / 'cells'} ({unsaved} could not be written)"


def _written_note(out: Path, written: Path) -> str:
    """Where a partial set went, and why not to ``out`` when it did not."""
    if written == out:
        return str(out)
    return f"{written} (the complete results.json of an earlier run in {out} is kept)"


def main(args: argparse.Namespace) -> int:
    registry = plugins.get_registry()
    for failure in registry.failures:
        print(f"dememo-bench: warning: {failure.error} (from {failure.distribution}); other plugins are loaded",
              file=sys.stderr)
    if args.list:
        print(list_plugins(registry, args.format))
        return 0
    if not args.all and not any([args.poisoner, args.unlearner, args.attack, args.metric]):
        raise UserError("nothing to run: give --all (optionally narrowed by --poisoner/--unlearner/...) or --list")
    if args.seeds is not None and not 1 <= args.seeds <= MAX_SEEDS:
        raise UserError(f"--seeds must be between 1 and {MAX_SEEDS}")
    if args.cell_timeout is not None or args.cell_memory is not None:
        args.isolate = True
    if args.isolate and args.executor != "local":
        raise UserError("--isolate works with the local executor; Ray already runs every task in a worker process")
    if args.jobs is not None and args.executor != "local":
        raise UserError("--jobs works with the local executor; Ray schedules its own tasks (leave --jobs out)")
    suite = load_suite(args.suite)
    if args.deterministic:
        set_deterministic()
    device = resolve_device(args.device)
    threads = prepare_process(args.threads)
    jobs = count_setting("--jobs", args.jobs, "DEMEMO_JOBS", default_jobs(device)) if args.executor == "local" else 1
    planner = Planner(registry, suite, parse_sets(args.set))
    filters = Filters(tuple(args.poisoner), tuple(args.unlearner), tuple(args.attack), tuple(args.metric))
    cells = planner.cells(filters, seeds=args.seeds)
    if not cells:
        raise UserError("the filters leave no cell to run; see 'dememo-bench --list'")
    check_plan_size(cells, args.yes)
    # absolute from here on: a plugin that changes the working directory cannot move where results go
    out = (args.out or Path("dememo-results") / suite.name).absolute()
    cache = (args.cache_dir or default_cache_dir()).absolute()
    if args.data_dir is not None:
        args.data_dir = Path(args.data_dir).absolute()
    store = Store(cache)
    try:
        out.mkdir(parents=True, exist_ok=True)
        store.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output or cache directory: {exc}") from None
    store.sweep()  # temporaries of writers killed long ago
    progress = Progress(show=False if args.quiet else None)
    runner = Runner(store, device, progress, data_dir=args.data_dir, download=args.download, planner=planner)
    load_datasets(runner, planner, suite, cells)

    jobs = min(jobs, len(cells))
    where = "this process" if jobs == 1 and not args.isolate else f"{jobs} worker process{'es' if jobs > 1 else ''}"
    if args.executor == "ray":
        where = "Ray tasks"
    print(f"dememo-bench: suite {suite.name!r}, {len(cells)} cells, device {device}, {where} of {threads} thread"
          f"{'s' if threads > 1 else ''}, cache {cache}", file=sys.stderr)
    workers = None
    if args.executor == "ray" or args.isolate or jobs > 1:
        given = Path(args.suite)  # workers may start in another directory: paths are made absolute
        suite_ref = str(given.resolve()) if given.suffix == ".toml" or given.exists() else args.suite
        spec = RunSpec(suite=suite_ref, sets=parse_sets(args.set), filters=attrs.asdict(filters),
                       seeds=args.seeds, device=str(device), cache_dir=str(Path(cache).resolve()),
                       data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else None, download=args.download,
                       deterministic=args.deterministic, threads=threads)
        memory = None if args.cell_memory is None else int(args.cell_memory * 2**30)
        workers = Workers(spec, args.executor == "local", args.cell_timeout, memory, args.address, jobs)
    outcome = execute(cells, runner, out, progress, workers)
    records, unsaved, elapsed = outcome.records, outcome.unsaved, outcome.elapsed
    interrupted, stopped, crashed = outcome.interrupted, outcome.stopped, outcome.crashed
    with interrupts.deferred():  # a second Ctrl-C or a SIGTERM storm waits until the set is written
        signals = interrupts.pending()
        partial = outcome.partial
        data = results.assemble(
            suite=suite.to_json(),
            environment={**fingerprint(device), "jobs": jobs if args.executor == "local" else None,
                         "wall_seconds": round(elapsed, 2)},
            plugins=[i.to_json() for i in registry.all()],
            columns=columns_meta(registry),
            cells=[r.to_json() for r in records.values()],
            failures=[f.to_json() for f in registry.failures],
            partial=(len(records), len(cells)) if partial else None,
        )
        try:
            written = write_outputs(out, data, suite.name)
        except OSError as exc:
            raise StorageError(f"cannot write results to {out}: {storage_advice(exc, '--out')}; no results file "
                               f"there was changed; {_saved_note(out, len(records), len(unsaved))}; then run the same "
                               "command again (it resumes from the cache)") from None
        where = _written_note(out, written)
        if crashed is not None:
            print(f"dememo-bench: an internal error stopped the run after {len(records)} of {len(cells)} cells; "
                  f"{_saved_note(out, len(records), len(unsaved))}; partial results are in {where}. Please report "
                  "the traceback below.", file=sys.stderr)
            raise crashed
        if stopped is not None:
            error = (StorageError if isinstance(stopped, StorageError) else UserError)(
                f"{stopped} — results of the {len(records)} cells finished before it are written to {where}; "
                f"{_saved_note(out, len(records), len(unsaved))}")
            error.exit_code = stopped.exit_code
            raise error
        if interrupted:
            print(f"\ndememo-bench: interrupted after {len(records)} of {len(cells)} cells; "
                  f"{_saved_note(out, len(records), len(unsaved))}; partial results are in {where}. Run the same "
                  "command again to resume.", file=sys.stderr)
            return 130
        if interrupts.pending() > signals:
            print(f"\ndememo-bench: interrupted while writing; all {len(records)} cells finished and their results "
                  f"are complete in {out}.", file=sys.stderr)
            return 130
    print(leaderboard.render(data, "simple"))
    failed = [r for r in records.values() if r.status == "failed"]
    cached = sum(all(t.get("cached", True) for k, t in r.timings.items() if k != "metrics") for r in records.values())
    computed = f", {store.writes} stages computed here" if workers is None else ""
    print(f"\n{len(records)} cells in {elapsed:.1f}s ({cached} fully from cache{computed}), {len(failed)} failed. "
          f"Results: {out}/results.json, leaderboard.md, leaderboard.csv, leaderboard.html", file=sys.stderr)
    return 1 if failed else 0
