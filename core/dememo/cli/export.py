"""``dememo-bench export``: the original model and the splits of one (dataset, seed, forget set) of a suite, for
unlearning in your own code; ``dememo-bench eval`` then scores the model you unlearned."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dememo.api.external import export


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dememo-bench export",
        description="Write the suite's original model (state dict), the train/val/test data and the retain/forget "
        "positions of one dataset, seed and forget set to a directory. Unlearn the model in your own code, save "
        "its state dict, then: dememo-bench eval --model unlearned.pt --from DIR --name my-method",
    )
    p.add_argument("--suite", default="quick", help="shipped suite name or path to a suite .toml (default: quick)")
    p.add_argument("--dataset", required=True, help="a dataset of the suite, e.g. digits")
    p.add_argument("--forget", required=True, help="a forget set of the suite, e.g. class-0 or random-10%%")
    p.add_argument("--seed", type=int, default=0, help="the seed of the original model and the forget set (default 0)")
    p.add_argument("--out", type=Path, required=True, help="the directory to write")
    p.add_argument("--cache-dir", type=Path, default=None, help="stage cache (default: $DEMEMO_CACHE_DIR or ~/.cache/dememo)")
    p.add_argument("--data-dir", type=Path, default=None, help="where dataset plugins look for files")
    p.add_argument("--download", action="store_true", help="let dataset plugins download missing files")
    p.add_argument("--device", default="auto", help="torch device for training the original model if not cached")
    p.add_argument("--set", action="append", default=[], metavar="PLUGIN.PARAM=VALUE", help="as for a run")
    p.add_argument("--force", action="store_true", help="replace an export already in --out")
    return p


def main(args: argparse.Namespace) -> int:
    out = export(args.out, suite=args.suite, dataset=args.dataset, forget=args.forget, seed=args.seed,
                 cache_dir=args.cache_dir, data_dir=args.data_dir, download=args.download, device=args.device,
                 sets=args.set, force=args.force)
    print(f"wrote {out}/export.json, original.pt, data.npz, splits.npz; after unlearning: dememo-bench eval --model "
          f"unlearned.pt --from {out} --name my-method", file=sys.stderr)
    return 0
