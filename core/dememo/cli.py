"""``dememo-bench``: run a suite with every installed plugin and print the leaderboard."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import torch

from . import interrupts, leaderboard, plugins, results
from .cache import Store
from .devices import resolve_device, set_deterministic  # noqa: F401 (also their old home, for callers)
from .environment import fingerprint
from .errors import DatasetError, StorageError, UserError, storage_advice
from .params import parse_sets, printable
from .planner import Filters, Planner
from .progress import Progress
from .runner import Runner
from .suite import load_suite

log = logging.getLogger("dememo")


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
    p.add_argument("--isolate", action="store_true",
                   help="run each cell in a worker process, so a plugin that crashes the interpreter, hangs or leaks "
                   "memory fails only its own cell (slower start; in-process is the default)")
    p.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                   help="with --isolate (implied): fail a cell that runs longer than this and go on")
    p.add_argument("--cell-memory", type=float, default=None, metavar="GIB",
                   help="with --isolate (implied): fail a cell whose worker's resident memory exceeds this (Linux)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels only (torch.use_deterministic_algorithms; slower on GPUs): the same "
                   "run on the same machine then gives bit-identical results")
    p.add_argument("--yes", action="store_true",
                   help=f"run a plan of more than {LARGE_PLAN:,} cells without asking (it is refused otherwise)")
    return p


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


def columns_meta(registry: plugins.Registry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in registry.names("metric"):
        cls = registry.get("metric", name)
        for track in cls.tracks:  # type: ignore[attr-defined]
            for col, c in cls.columns.items():  # type: ignore[attr-defined]
                out.setdefault(track, {})[col] = {"metric": name, "label": c.label, "direction": c.direction,
                                                  "unit": c.unit, "description": c.description, "reference": c.reference,
                                                  "wall_clock": c.wall_clock, "cap": c.cap, "detail": c.detail,
                                                  "signed": c.signed}
    return out


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
        from .leaderboard_html import render_page

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
    """Write results.json and the leaderboards as one set (:func:`dememo.outputs.atomic_write_set`: all new or,
    on any failure, all as before) and return the directory written. Partial results never replace complete
    ones: when ``out`` holds a complete results.json they go to ``out/partial/`` instead. A complete set
    removes a stale ``out/partial/``. Raises ``OSError`` when the set cannot be written."""
    from .outputs import atomic_write_set

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


def run(args: argparse.Namespace) -> int:
    registry = plugins.get_registry()
    for failure in registry.failures:
        print(f"dememo-bench: warning: {failure.error} (from {failure.distribution}); other plugins are loaded",
              file=sys.stderr)
    if args.list:
        print(list_plugins(registry, args.format))
        return 0
    if not args.all and not any([args.poisoner, args.unlearner, args.attack, args.metric]):
        raise UserError("nothing to run: give --all (optionally narrowed by --poisoner/--unlearner/...) or --list")
    from .suite import MAX_SEEDS

    if args.seeds is not None and not 1 <= args.seeds <= MAX_SEEDS:
        raise UserError(f"--seeds must be between 1 and {MAX_SEEDS}")
    if args.cell_timeout is not None or args.cell_memory is not None:
        args.isolate = True
    if args.isolate and args.executor != "local":
        raise UserError("--isolate works with the local executor; Ray already runs every task in a worker process")
    suite = load_suite(args.suite)
    if args.deterministic:
        set_deterministic()
    device = resolve_device(args.device)
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

    print(f"dememo-bench: suite {suite.name!r}, {len(cells)} cells, device {device}, cache {cache}", file=sys.stderr)
    records: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    interrupted = False
    bar = progress.bar(len(cells), "cells")

    unsaved: list[str] = []  # finished cells whose own file could not be written

    def finished(record: dict[str, Any]) -> None:
        records[record["key"]] = record  # in results.json even when its cell file cannot be written
        try:
            results.write_cell(out, record)
        except StorageError:
            unsaved.append(record["key"])
            raise

    stopped: UserError | None = None
    crashed: Exception | None = None
    try:
        if args.executor == "ray" or args.isolate:
            from .executors import RunSpec, run_ray
            from .isolation import run_isolated

            given = Path(args.suite)  # workers may start in another directory: paths are made absolute
            suite_ref = str(given.resolve()) if given.suffix == ".toml" or given.exists() else args.suite
            spec = RunSpec(suite=suite_ref, sets=parse_sets(args.set), filters=attrs.asdict(filters),
                           seeds=args.seeds, device=str(device), cache_dir=str(Path(cache).resolve()),
                           data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else None, download=args.download,
                           deterministic=args.deterministic, threads=torch.get_num_threads())
            if args.isolate:
                memory = None if args.cell_memory is None else int(args.cell_memory * 2**30)
                done_cells = run_isolated(spec, cells, args.cell_timeout, memory, finished)
            else:
                done_cells = run_ray(spec, cells, args.address, finished)
            for done in done_cells:
                bar.update(done - bar.n)
        else:
            for cell in cells:
                bar.set_postfix_str(f"{cell.data.name}: {cell.method} @{cell.attack.label}"[:60])
                finished(runner.run_cell(cell))
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    except StorageError as exc:  # a full disk: what is finished is on disk; write what can be written, then stop
        stopped = exc
    except Exception as exc:  # a bug that escaped every cell's guard: keep what finished, then show it
        crashed = exc
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    with interrupts.deferred():  # a second Ctrl-C or a SIGTERM storm waits until the set is written
        signals = interrupts.pending()
        partial = interrupted or stopped is not None or crashed is not None
        data = results.assemble(
            suite=suite.to_json(),
            environment={**fingerprint(device), "wall_seconds": round(elapsed, 2)},
            plugins=[i.to_json() for i in registry.all()],
            columns=columns_meta(registry),
            cells=list(records.values()),
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
            raise StorageError(f"{stopped} — results of the {len(records)} cells finished before it are written to "
                               f"{where}; {_saved_note(out, len(records), len(unsaved))}")
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
    failed = [r for r in records.values() if r["status"] == "failed"]
    cached = sum(all(t.get("cached", True) for k, t in r["timings"].items() if k != "metrics") for r in records.values())
    computed = f", {store.writes} stages computed here" if args.executor == "local" and not args.isolate else ""
    print(f"\n{len(records)} cells in {elapsed:.1f}s ({cached} fully from cache{computed}), {len(failed)} failed. "
          f"Results: {out}/results.json, leaderboard.md, leaderboard.csv, leaderboard.html", file=sys.stderr)
    return 1 if failed else 0


def tune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dememo-bench tune",
        description="Select unlearner hyper-parameters by the suite's protocol: each unlearner's search_space, "
        "tuning seeds disjoint from the evaluation seeds, smallest Avg Gap to retrain on the validation split. "
        "Writes OUT/tuning.json; a suite applies it with  tuning = \"tuning.json\".",
    )
    p.add_argument("--suite", default="quick", help="shipped suite name or path to a suite .toml (default: quick)")
    p.add_argument("--unlearner", action="append", default=[], metavar="NAME", help="only this unlearner (repeatable)")
    p.add_argument("--forget", action="append", default=[], metavar="LABEL", help="only this forget set, e.g. random-10%%")
    p.add_argument("--seeds", type=int, default=2, help="tuning seeds (1000, 1001, ...; default 2)")
    p.add_argument("--trials", type=int, default=None, help="at most this many candidates per unlearner (seeded sample)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: ./dememo-results/<suite>-tuning)")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--set", action="append", default=[], metavar="PLUGIN.PARAM=VALUE", help="as for a run")
    p.add_argument("--quiet", action="store_true")
    return p


def run_tune(args: argparse.Namespace) -> int:
    from . import tuning

    if args.seeds < 1 or (args.trials is not None and args.trials < 1):
        raise UserError("--seeds and --trials must be at least 1")
    registry = plugins.get_registry()
    suite = load_suite(args.suite, apply_tuning=False)
    planner = Planner(registry, suite, parse_sets(args.set))
    names = args.unlearner or registry.names("unlearner")
    for name in names:
        registry.get("unlearner", name)
    device = resolve_device(args.device)
    out = args.out or Path("dememo-results") / f"{suite.name}-tuning"
    store = Store(args.cache_dir or default_cache_dir())
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory: {exc}") from None
    progress = Progress(show=False if args.quiet else None)
    runner = Runner(store, device, progress, data_dir=args.data_dir, planner=planner)
    tuner = tuning.Tuner(planner, runner, args.seeds, args.trials)
    def each(jobs, desc):
        bar = progress.bar(len(jobs), desc)
        for entry, spec, name in jobs:
            bar.set_postfix_str(f"{entry.name} {spec.label()}: {name}"[:60])
            yield entry, spec, name
            bar.update(1)
        bar.close()

    record = tuner.run(names, args.forget or None, progress=each)
    path = tuning.write(out, record)
    print(tuning.summary(record))
    print(f"\nwrote {path}; apply it with  tuning = \"{path.name}\"  in a suite file next to it", file=sys.stderr)
    return 0


def report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dememo-bench report",
        description="Render a finished run's results as figures (one PNG and one SVG each) and one self-contained "
        "HTML page: accuracy recovered along weight-space radii and under weight noise, attack-strength sweeps, "
        "residual knowledge along tau and the interplay heat maps.",
    )
    p.add_argument("--results", type=Path, required=True, metavar="DIR",
                   help="a run's results directory (or its results.json)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="where to write the report (default: DIR/report)")
    return p


def run_report(args: argparse.Namespace) -> int:
    from . import report

    data = results.load_results(args.results)
    out = args.out or (args.results if args.results.is_dir() else args.results.parent) / "report"
    written = report.write_report(data, out)
    for path in written:
        print(path)
    print(f"dememo-bench: wrote {len(written)} files; open {out / 'report.html'}", file=sys.stderr)
    return 0


def submit_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dememo-bench submit",
        description="Write a leaderboard submission bundle (JSON, schema dememo.submission/1): the cells of a finished "
        "run that use a plugin of your distribution, the reference rows of their tables, the suite, seeds, "
        "environment and a SHA-256 over the content. Check it with 'dememo-bench verify'.",
    )
    p.add_argument("--results", type=Path, required=True, metavar="DIR", help="a run's results directory (or its results.json)")
    p.add_argument("--name", required=True, help="the entry's display name on the board")
    p.add_argument("--plugin", required=True, metavar="DIST",
                   help="the distribution whose plugins the entry submits (as in 'dememo-bench --list'), e.g. dememo-myplugin")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="the bundle to write, e.g. my-entry.json")
    return p


def run_submit(args: argparse.Namespace) -> int:
    from . import submission

    data = results.load_results(args.results)
    if results.is_partial(data):  # a bundle has no place to say so: the board would take it for a full run
        p = data["partial"]
        raise UserError(f"{args.results} holds partial results ({p['cells_done']} of {p['cells_planned']} cells, the run "
                        "was stopped); run the same command again to finish it, then submit")
    b = submission.bundle(data, args.name, args.plugin)  # which refuses partial results too
    path = submission.write_bundle(b, args.out)
    own = len(b["cells"])
    print(f"dememo-bench: wrote {path}: {own} cells of {b['plugin']['distribution']} {b['plugin']['version']} with "
          f"their reference rows, suite {b['suite']['name']!r}, sha256 {b['content_sha256']}", file=sys.stderr)
    return 0


def verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dememo-bench verify",
        description="Check a submission bundle: schema, content hash, cell keys, metric values, suite, plugin versions "
        "and reference rows; with --rerun K, re-run K sampled cells with the installed plugins from an empty cache "
        "and compare every metric within a tolerance. Prints PASS/FAIL per check; exit 0 when all pass, 1 otherwise.",
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="a bundle written by 'dememo-bench submit'")
    p.add_argument("--rerun", type=int, default=0, metavar="K", help="re-run K cells drawn at random (default 0)")
    p.add_argument("--rerun-seed", type=int, default=None, metavar="S", help="seed of the draw (default: fresh, printed)")
    p.add_argument("--cell", action="append", default=[], metavar="KEY", help="re-run this cell (repeatable)")
    p.add_argument("--tolerance", type=float, default=None, metavar="T",
                   help="absolute tolerance for fraction columns (default 0.02)")
    p.add_argument("--rel-tolerance", type=float, default=None, metavar="R",
                   help="relative tolerance for the other columns (default 0.05)")
    p.add_argument("--cache-dir", type=Path, default=None, help="stage cache for re-runs (default: a fresh temporary one)")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", type=Path, default=None)
    return p


def run_verify(args: argparse.Namespace) -> int:
    from . import submission

    if args.rerun < 0:
        raise UserError("--rerun must be at least 0")
    abs_tol = submission.ABS_TOL if args.tolerance is None else args.tolerance
    rel_tol = submission.REL_TOL if args.rel_tolerance is None else args.rel_tolerance
    if abs_tol < 0 or rel_tol < 0:
        raise UserError("--tolerance and --rel-tolerance must be ≥ 0")
    b = submission.load_bundle(args.bundle)
    device = resolve_device(args.device) if (args.rerun or args.cell) else "cpu"
    checks = submission.verify(b, rerun=args.rerun, tolerance=abs_tol, rel_tolerance=rel_tol, cache_dir=args.cache_dir,
                               seed=args.rerun_seed, keys=args.cell or None, device=device, data_dir=args.data_dir)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"dememo-bench: {args.bundle}: {len(checks) - len(failed)} of {len(checks)} checks passed"
          + ("" if not failed else f"; REJECTED ({', '.join(c.name for c in failed)})"), file=sys.stderr)
    return 1 if failed else 0


def leaderboard_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dememo-bench leaderboard", description="Build the public board from submission bundles.")
    sub = p.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", description="Merge the accepted bundles in ENTRIES_DIR (every check of 'dememo-bench verify' "
                       "without re-runs; nothing in a bundle is executed, and nothing is run without --rerun) into results.json, leaderboard.md/.csv/.json/.html in --out. "
                       "A bundle whose suite or protocol differs from the board's (ENTRIES_DIR/board.json, else the "
                       "fingerprint most bundles share) is refused with its reason. Each bundle puts only the rows of its "
                       "own distribution's plugins on the board; a bundle claiming a plugin installed here under another "
                       "distribution or version is refused alone; two bundles that claim the same distribution, plugin, row, "
                       "name or content are both held back, naming each other. Any refusal exits 1.")
    b.add_argument("entries", type=Path, metavar="ENTRIES_DIR", help="a directory of *.json bundles")
    b.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write the board")
    b.add_argument("--rerun", type=int, default=0, metavar="K",
                   help="re-run K sampled own cells of every entry the board in --out does not record as re-run with at "
                        "least K (same content SHA-256) with the installed plugins; an entry whose re-run fails is held "
                        "back (default 0)")
    b.add_argument("--rerun-seed", type=int, default=None, metavar="S", help="seed of the draw (default: fresh, printed)")
    b.add_argument("--device", default="auto", help="device of the re-runs")
    b.add_argument("--data-dir", type=Path, default=None)
    return p


def run_leaderboard(args: argparse.Namespace) -> int:
    from . import submission

    if args.rerun < 0:
        raise UserError("--rerun must be at least 0")
    device = resolve_device(args.device) if args.rerun else "cpu"
    board = submission.build_board(args.entries, args.out, rerun=args.rerun, rerun_seed=args.rerun_seed,
                                   device=device, data_dir=args.data_dir)
    for name, check in board.reruns:  # which cells were re-run, and the seed of the draw
        print(f"re-ran {name}: {check.line()}")
    for entry in board.accepted:
        print(f"accepted {entry['file']}: {entry['name']} ({entry['distribution']} {entry['version']}, {entry['cells']} cells)")
    for name, reason in board.refused:
        print(f"refused {name}: {reason}")
    for note in board.notes:
        print(f"dememo-bench: {note}", file=sys.stderr)
    print(f"dememo-bench: wrote {', '.join(str(p) for p in board.written)}", file=sys.stderr)
    return 1 if board.refused else 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="dememo-bench: %(levelname)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    with interrupts.handling():  # Ctrl-C and SIGTERM are told apart from a plugin raising KeyboardInterrupt
        return _dispatch(argv)


def _dispatch(argv: list[str]) -> int:
    try:
        if argv[:1] == ["tune"]:
            return run_tune(tune_parser().parse_args(argv[1:]))
        if argv[:1] == ["report"]:
            return run_report(report_parser().parse_args(argv[1:]))
        if argv[:1] == ["submit"]:
            return run_submit(submit_parser().parse_args(argv[1:]))
        if argv[:1] == ["verify"]:
            return run_verify(verify_parser().parse_args(argv[1:]))
        if argv[:1] == ["leaderboard"]:
            return run_leaderboard(leaderboard_parser().parse_args(argv[1:]))
        args = parser().parse_args(argv)
        return run(args)
    except UserError as exc:
        from .params import printable

        print(f"dememo-bench: error: {printable(str(exc))}", file=sys.stderr)  # one line, whatever the input held
        return exc.exit_code


def entry() -> None:
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `dememo-bench --list | head` ends quietly
    # SIGTERM (a CI time limit, `kill`) stops like Ctrl-C (``interrupts.handling`` in main): finished cells
    # are already on disk, and the partial results.json and leaderboards are written before exiting
    sys.exit(main())
