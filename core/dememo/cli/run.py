"""``dememo-bench [--all]``: plan a suite with every installed plugin, run its cells, write the results and
print the leaderboard."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from dememo import __version__, plugins
from dememo.api import announce_end
from dememo.api.launch import Launch
from dememo.api.options import RunOptions, default_cache_dir  # noqa: F401 - dememo.cli.default_cache_dir's home
from dememo.api.preview import preview
from dememo.board import leaderboard
from dememo.cli.commands import help_text
from dememo.engine.session import LARGE_PLAN
from dememo.errors import UserError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dememo-bench",
        description="Benchmark model dememorization: unlearnable examples, machine unlearning and the attacks "
        "that show a model still knows its data.",
        epilog=SUBCOMMAND_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(p)
    return p


SUBCOMMAND_HELP = help_text() + """

examples:
  dememo-bench --all                                   the embedded default suite, every installed plugin
  dememo-bench plan --all --unlearner scrub --seeds 1  see a narrowed run before starting it
  dememo-bench --all --unlearner scrub --seeds 1       run it
  dememo-bench --list                                  the installed plugins"""


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of a run, shared by ``dememo-bench`` and ``dememo-bench plan``."""
    p.add_argument("--version", action="version", version=f"dememo {__version__}")
    p.add_argument("--all", action="store_true", help="run every compatible combination of installed plugins")
    p.add_argument("--dry-run", action="store_true", help="print the plan (as 'dememo-bench plan') and exit")
    p.add_argument("--list", action="store_true", help="list installed plugins by family and exit (--format json: "
                   "with each plugin's parameters, their types and defaults)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format of --list and of a plan")
    p.add_argument("--suite", default=None, help="shipped suite name or path to a suite .toml (default: quick; "
                   "smoke with --smoke)")
    p.add_argument("--smoke", action="store_true",
                   help="a plugin author's check in under a minute: the named plugin(s) against the reference rows "
                        "on the smoke suite (digits, one seed); e.g. --smoke --unlearner my-method")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, mps (default: auto)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the suite's)")
    p.add_argument("--out", type=Path, default=None, help="results directory (default: ./dememo-results/<suite>)")
    p.add_argument("--cache-dir", type=Path, default=None, help="stage cache (default: $DEMEMO_CACHE_DIR or ~/.cache/dememo)")
    p.add_argument("--data-dir", type=Path, default=None, help="where dataset plugins look for files")
    p.add_argument("--download", action="store_true", help="let dataset plugins download missing files")
    for family in ("poisoner", "unlearner", "attack", "metric"):
        p.add_argument(f"--{family}", action="append", default=[], metavar="NAME",
                       help=f"only this {family} (repeatable; references stay)")
    p.add_argument("--dataset", action="append", default=[], metavar="NAME", help="only this dataset of the suite (repeatable)")
    p.add_argument("--forget", action="append", default=[], metavar="LABEL",
                   help="only this forget set (e.g. class-0, random-10%%) or interplay target (share, clean); repeatable")
    p.add_argument("--track", action="append", default=[], choices=["unlearnability", "unlearning", "interplay"],
                   help="only this track (repeatable; default: the suite's, narrowed by the plugin filters)")
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


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in "…" when cut."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def list_plugins(registry: plugins.Registry, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"plugins": [i.to_json() for i in registry.all()],
                           "load_failures": [f.to_json() for f in registry.failures]}, indent=2)
    width = shutil.get_terminal_size((100, 24)).columns  # a pipe or a file: 100 columns
    infos_all = list(registry.all())
    dist = max((len(i.distribution) for i in infos_all), default=6)
    name = max((len(i.cls.name) for i in infos_all), default=10)
    lines = []
    for family in ("dataset", "architecture", "poisoner", "unlearner", "attack", "metric"):
        infos = [registry.classes[family][n] for n in registry.names(family)]
        lines.append(f"{family}s ({len(infos)}):")
        for i in infos:
            head = f"  {i.cls.name:<{name}} v{i.cls.version:<4} {i.distribution:<{dist}} "
            lines.append(head + shorten(i.cls.summary(), max(20, width - len(head))))
    for f in registry.failures:
        lines.append(f"FAILED TO LOAD {f.plugin} ({f.distribution}): {f.error}")
    return "\n".join(lines)


def options(args: argparse.Namespace) -> RunOptions:
    """The run's options from the command line's flags."""
    return RunOptions(
        suite=args.suite, poisoners=args.poisoner, unlearners=args.unlearner, attacks=args.attack,
        metrics=args.metric, datasets=args.dataset, forget=args.forget, tracks=args.track, seeds=args.seeds,
        sets=args.set, device=args.device, out=args.out, cache_dir=args.cache_dir, data_dir=args.data_dir,
        download=args.download, jobs=args.jobs, threads=args.threads, executor=args.executor, address=args.address,
        isolate=args.isolate, cell_timeout=args.cell_timeout, cell_memory=args.cell_memory,
        deterministic=args.deterministic, yes=args.yes, progress=False if args.quiet else None, smoke=args.smoke)


def main(args: argparse.Namespace) -> int:
    registry = plugins.get_registry()
    for failure in registry.failures:
        print(f"dememo-bench: warning: {failure.error} (from {failure.distribution}); other plugins are loaded",
              file=sys.stderr)
    if args.list:
        print(list_plugins(registry, args.format))
        return 0
    opts = options(args)
    if not args.all and not opts.narrowed and not opts.smoke:
        raise UserError("nothing to run: give --all (optionally narrowed by --poisoner/--unlearner/...), --list, "
                        "or 'dememo-bench plan --all' to see a run first")
    launch = Launch(opts, registry)
    if args.dry_run:
        plan = preview(launch)
        print(json.dumps(plan.to_json(), indent=1) if args.format == "json" else plan.render())
        return 0
    launch.open()  # a dataset none can load is its one-line error before anything else is said
    print(f"dememo-bench: {launch.plan_line()}", file=sys.stderr)
    finished = launch.execute()
    outcome = finished.outcome
    if outcome.interrupted:
        print(f"\ndememo-bench: interrupted after {len(outcome.records)} of {finished.cells} cells; "
              f"{finished.saved}; partial results are in {finished.where}. Run the same command again to resume.",
              file=sys.stderr)
        return 130
    if finished.late_signal:
        print(f"\ndememo-bench: interrupted while writing; all {len(outcome.records)} cells finished and their results "
              f"are complete in {finished.out}.", file=sys.stderr)
        return 130
    print(leaderboard.render(finished.data, "simple"))
    announce_end(finished, launch.estimated)
    if opts.smoke:
        named = " ".join([f"--{f} {n}" for f, names in (("poisoner", opts.poisoners), ("unlearner", opts.unlearners),
                                                         ("attack", opts.attacks), ("metric", opts.metrics))
                          for n in names] + ([f"--suite {args.suite}"] if args.suite else []))
        print(f"dememo-bench: a smoke run (one seed of suite {launch.suite.name!r}, many-model metrics on a few models) "
              f"checks that a plugin runs and which way it moves. For numbers to report: dememo-bench --all "
              f"{named}".rstrip(), file=sys.stderr)
    return 1 if any(r.status == "failed" for r in outcome.records.values()) else 0
