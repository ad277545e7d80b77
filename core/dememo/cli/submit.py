"""``dememo-bench submit``: a leaderboard submission bundle from a finished run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dememo import results
from dememo.errors import UserError
from dememo.board.bundle import bundle, write_bundle


def parser() -> argparse.ArgumentParser:
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


def main(args: argparse.Namespace) -> int:
    data = results.load_results(args.results)
    if results.is_partial(data):  # a bundle has no place to say so: the board would take it for a full run
        p = data["partial"]
        raise UserError(f"{args.results} holds partial results ({p['cells_done']} of {p['cells_planned']} cells, the run "
                        "was stopped); run the same command again to finish it, then submit")
    b = bundle(data, args.name, args.plugin)  # which refuses partial results too
    path = write_bundle(b, args.out)
    own = len(b["cells"])
    print(f"dememo-bench: wrote {path}: {own} cells of {b['plugin']['distribution']} {b['plugin']['version']} with "
          f"their reference rows, suite {b['suite']['name']!r}, sha256 {b['content_sha256']}", file=sys.stderr)
    return 0
