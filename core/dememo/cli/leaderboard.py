"""``dememo-bench leaderboard build``: the public board from submission bundles."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dememo.errors import UserError
from dememo.engine.devices import resolve_device
from dememo.board.public import build_board


def parser() -> argparse.ArgumentParser:
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


def main(args: argparse.Namespace) -> int:
    if args.rerun < 0:
        raise UserError("--rerun must be at least 0")
    device = resolve_device(args.device) if args.rerun else "cpu"
    board = build_board(args.entries, args.out, rerun=args.rerun, rerun_seed=args.rerun_seed,
                        device=device, data_dir=args.data_dir)
    for name, check in board.reruns:  # which cells were re-run, and the seed of the draw
        print(f"re-ran {name}: {check.line()}")
    for entry in board.accepted:
        columns = f", columns {', '.join(entry['columns'])}" if entry.get("columns") else ""
        print(f"accepted {entry['file']}: {entry['name']} ({entry['distribution']} {entry['version']}, {entry['cells']} rows"
              f"{columns})")
    for name, reason in board.refused:
        print(f"refused {name}: {reason}")
    for note in board.notes:
        print(f"dememo-bench: {note}", file=sys.stderr)
    print(f"dememo-bench: wrote {', '.join(str(p) for p in board.written)}", file=sys.stderr)
    return 1 if board.refused else 0
