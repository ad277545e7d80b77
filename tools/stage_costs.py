"""Build ``core/dememo/suites/costs.json``, the shipped per-stage costs behind ``dememo-bench plan``'s estimate,
from the results.json of cold runs (every stage's seconds are in its cells' timings; cached stages carry the
seconds of their computation):

    python tools/stage_costs.py RUN/results.json [RUN2/results.json ...] --machine "2-core CPU, ..." \
        > core/dememo/suites/costs.json

The committed leaderboards cannot serve: bundles leave the timings out.
"""

from __future__ import annotations

import argparse
import json
import sys

from dememo.engine.costs import SCHEMA, summarise
from dememo.results import load_results, records


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="results.json of cold runs (with timings)")
    p.add_argument("--machine", required=True, help="where they ran, in words (recorded in the file)")
    args = p.parse_args()
    cells = []
    runs = []
    for path in args.results:
        data = load_results(path)
        cells += records(data["cells"])
        env = data.get("environment", {})
        runs.append(f"{data['suite'].get('name')} ({len(data['cells'])} cells, {env.get('jobs')} workers, "
                    f"dememo {env.get('dememo', '?')}, torch {env.get('torch', '?')})")
    timed = [c for c in cells if c.timings]
    if not timed:
        print("stage_costs: no cell carries timings (bundles and boards leave them out)", file=sys.stderr)
        return 2
    table = summarise(timed)
    out = {"schema": SCHEMA, "measured_on": f"{args.machine}; runs: {'; '.join(runs)}", "contexts": table}
    json.dump(out, sys.stdout, indent=0, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
