"""``dememo-bench eval``: a model unlearned in your own code (from a ``dememo-bench export``), through every attack
and metric of the suite against the same references, as a row of its own."""

from __future__ import annotations

import argparse
from pathlib import Path

from dememo.api.external import evaluate
from dememo.board import leaderboard


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dememo-bench eval",
        description="Evaluate the state dict of a model unlearned from a 'dememo-bench export' directory: every "
        "model-stage attack and metric of the suite for its dataset, seed and forget set, beside the reference "
        "rows (original, retrain), printed and written like any method's rows.",
    )
    p.add_argument("--model", type=Path, required=True, help="the unlearned model's state dict (torch.save)")
    p.add_argument("--from", dest="source", type=Path, required=True, help="the export directory it was unlearned from")
    p.add_argument("--name", required=True, help="the row label of your method, e.g. my-finetune")
    p.add_argument("--unlearner", action="append", default=[], metavar="NAME",
                   help="also run this installed unlearner on the same cells, for comparison (repeatable)")
    for family in ("attack", "metric"):
        p.add_argument(f"--{family}", action="append", default=[], metavar="NAME", help=f"only this {family} (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="results directory (default: ./dememo-results/eval-NAME)")
    p.add_argument("--cache-dir", type=Path, default=None, help="stage cache (default: $DEMEMO_CACHE_DIR or ~/.cache/dememo)")
    p.add_argument("--data-dir", type=Path, default=None, help="where dataset plugins look for files")
    p.add_argument("--device", default="auto", help="torch device (default: auto)")
    p.add_argument("--jobs", type=int, default=None, metavar="N", help="worker processes (default as for a run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(args: argparse.Namespace) -> int:
    res = evaluate(args.model, args.source, args.name, unlearners=args.unlearner, attacks=args.attack,
                   metrics=args.metric, out=args.out, cache_dir=args.cache_dir, data_dir=args.data_dir,
                   device=args.device, jobs=args.jobs, progress=False if args.quiet else None)
    print(leaderboard.render(res.data, "simple"))
    return 1 if res.failed else 0
