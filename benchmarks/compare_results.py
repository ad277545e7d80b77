"""Compare two runs cell for cell: the check behind issue 19's "no behaviour change" (a restructuring must
leave every number and every cache key as it was).

    python benchmarks/compare_results.py BEFORE/results.json AFTER/results.json [--json OUT.json]

Cells are matched by key (``digest(params)``: an unchanged key means an unchanged configuration, and the
stage keys derive from the same specs). For every cell present in both it compares status, error stage and
every metric and series value exactly (wall-clock columns aside, they are timings). It prints one line per
kind of difference and a summary, writes the figures as JSON, and exits 1 when anything differs.

To check that cache keys are unchanged too, run the AFTER command on the BEFORE run's cache: its last
line must say every cell came fully from the cache and ``0 stages computed here``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def load(path: Path) -> dict[str, Any]:
    path = path / "results.json" if path.is_dir() else path
    return json.loads(path.read_text(encoding="utf-8"))


def wall_clock(results: dict[str, Any]) -> set[str]:
    return {col for cols in results.get("columns", {}).values() for col, c in cols.items() if c.get("wall_clock")}


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Counts and the first examples of each kind of difference between two ``dememo.results/1`` dicts."""
    clock = wall_clock(before) | wall_clock(after)
    a = {c["key"]: c for c in before["cells"]}
    b = {c["key"]: c for c in after["cells"]}
    out: dict[str, Any] = {"cells_before": len(a), "cells_after": len(b), "only_before": sorted(set(a) - set(b)),
                           "only_after": sorted(set(b) - set(a)), "status": [], "values": [], "series": [],
                           "values_compared": 0}
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        where = f"{key[:12]} {x['method']} @{x['attack']} ({x['dataset']}, seed {x['seed']})"
        if x["status"] != y["status"] or (x.get("error") or {}).get("stage") != (y.get("error") or {}).get("stage"):
            out["status"].append(f"{where}: {x['status']} -> {y['status']}")
        for col in sorted((set(x["metrics"]) | set(y["metrics"])) - clock):
            out["values_compared"] += 1
            if x["metrics"].get(col, "missing") != y["metrics"].get(col, "missing"):
                out["values"].append(f"{where} {col}: {x['metrics'].get(col, 'missing')!r} -> "
                                     f"{y['metrics'].get(col, 'missing')!r}")
        for col in sorted(set(x.get("series") or {}) | set(y.get("series") or {})):
            if (x.get("series") or {}).get(col) != (y.get("series") or {}).get(col):
                out["series"].append(f"{where} series {col}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path, help="results.json (or its directory) of the run before the change")
    p.add_argument("after", type=Path, help="results.json (or its directory) of the run after it")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    a = p.parse_args()
    report = compare(load(a.before), load(a.after))
    for kind in ("only_before", "only_after", "status", "values", "series"):
        items = report[kind]
        print(f"{kind}: {len(items)}" + "".join(f"\n  {item}" for item in items[:5]))
    same = not any(report[k] for k in ("only_before", "only_after", "status", "values", "series"))
    print(f"{report['cells_before']} cells before, {report['cells_after']} after; {report['values_compared']} values "
          f"compared; {'IDENTICAL' if same else 'DIFFERENT'}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({**report, "identical": same}, indent=1) + "\n")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
