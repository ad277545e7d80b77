"""``dememo-bench report``: a finished run's figures and one self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dememo import results
from dememo.board import report


def parser() -> argparse.ArgumentParser:
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


def main(args: argparse.Namespace) -> int:
    data = results.load_results(args.results)
    out = args.out or (args.results if args.results.is_dir() else args.results.parent) / "report"
    written = report.write_report(data, out)
    for path in written:
        print(path)
    print(f"dememo-bench: wrote {len(written)} files; open {out / 'report.html'}", file=sys.stderr)
    return 0
