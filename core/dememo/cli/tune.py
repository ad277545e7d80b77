"""``dememo-bench tune``: select unlearner hyper-parameters by the suite's protocol and write tuning.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dememo import plugins
from dememo.cli.run import default_cache_dir
from dememo.errors import UserError
from dememo.params import parse_sets
from dememo.planning.planner import Planner
from dememo.planning.suite import load_suite
from dememo.planning.tuning_record import write_local
from dememo.progress import Progress
from dememo.engine import tuner as tuning
from dememo.engine.cache import Store
from dememo.engine.devices import prepare_process, resolve_device
from dememo.engine.runner import Runner


def parser() -> argparse.ArgumentParser:
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


def main(args: argparse.Namespace) -> int:
    if args.seeds < 1 or (args.trials is not None and args.trials < 1):
        raise UserError("--seeds and --trials must be at least 1")
    registry = plugins.get_registry()
    suite = load_suite(args.suite, apply_tuning=False)
    planner = Planner(registry, suite, parse_sets(args.set))
    names = args.unlearner or [n for n in registry.names("unlearner") if planner.buildable("unlearner", n)]
    for note in planner.skipped.values():
        print(f"dememo-bench: warning: {note}", file=sys.stderr)
    for name in names:
        registry.get("unlearner", name)
    device = resolve_device(args.device)
    prepare_process()  # one thread, like the runs whose parameters it tunes ($DEMEMO_THREADS overrides)
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
    print(f"\nwrote {path}: the whole search log", file=sys.stderr)
    suite = load_suite(args.suite)  # as runs see it, with its own tuning record (if it names one)
    covered = {e["unlearner"] for e in (suite.tuned or {}).get("entries", [])}
    if not args.unlearner:
        print(f"apply it with  tuning = \"{path.name}\"  in a suite file next to it; own tuning files, which later runs "
              "read without that, are written for the unlearners named with --unlearner", file=sys.stderr)
    for name in sorted({e["unlearner"] for e in record["entries"] if e["chosen"] is not None} & set(args.unlearner)):
        if name in covered:
            print(f"{name}: suite {suite.name!r}'s own tuning file ({suite.tuning}) sets its values and keeps "
                  f"precedence; use {path} in a copy of the suite (tuning = \"{path.name}\") to run yours",
                  file=sys.stderr)
            continue
        own = write_local(record, suite, name)
        print(f"{name}: wrote {own}; later runs of suite {suite.name!r} use these values for {name} (its rows say "
              "'tuned')", file=sys.stderr)
    return 0
