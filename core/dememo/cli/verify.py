"""``dememo-bench verify``: check a submission bundle, optionally re-running sampled cells."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dememo.errors import UserError
from dememo.engine.devices import resolve_device
from dememo.board import verify
from dememo.board.bundle import load_bundle


def parser() -> argparse.ArgumentParser:
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


def main(args: argparse.Namespace) -> int:
    if args.rerun < 0:
        raise UserError("--rerun must be at least 0")
    abs_tol = verify.ABS_TOL if args.tolerance is None else args.tolerance
    rel_tol = verify.REL_TOL if args.rel_tolerance is None else args.rel_tolerance
    if abs_tol < 0 or rel_tol < 0:
        raise UserError("--tolerance and --rel-tolerance must be ≥ 0")
    b = load_bundle(args.bundle)
    device = resolve_device(args.device) if (args.rerun or args.cell) else "cpu"
    checks = verify.verify(b, rerun=args.rerun, tolerance=abs_tol, rel_tolerance=rel_tol, cache_dir=args.cache_dir,
                           seed=args.rerun_seed, keys=args.cell or None, device=device, data_dir=args.data_dir)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"dememo-bench: {args.bundle}: {len(checks) - len(failed)} of {len(checks)} checks passed"
          + ("" if not failed else f"; REJECTED ({', '.join(c.name for c in failed)})"), file=sys.stderr)
    return 1 if failed else 0
