"""Reliability figures (issue 9): per fault category, cases tried, cases handled correctly, results lost.

    python benchmarks/bench_reliability.py [--kills 30] [--corrupt 40] [--fuzz 200] [--json benchmarks/results/reliability.json]

Runs the scenarios of ``dememo.testing.faults`` (the same code tests/test_chaos.py runs with fewer cases)
on a slice of the tiny test suite (digits, both tracks, 14 cells), each against one uninterrupted
reference run of the same cells:

- chaos: SIGKILL at seeded random moments, restart each time; every kill must leave a sound cache and whole
  cell files, and the final results must equal the reference number for number;
- concurrency: three runs with overlapping cells started at once on one cache, several rounds;
- corruption: cache files damaged by bit flips, truncation, emptying and deletion, then a re-run;
- disk-full: disks that fill after N bytes (a fault-injected ENOSPC on dememo's writes), then a re-run;
- isolation: ``--isolate`` with plugins that segfault, hang, leak memory and call os._exit;
- numerical: NaN/Inf images and weights, a changed architecture, in-place changes to shared data and models;
- fuzzing: malformed ``--set`` values, suite files, results.json, bundles and dataset files
  (``dememo.testing.fuzz``).

"lost" counts reference cells whose numbers differ or are missing at the end: it must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

EXTRA = ["--poisoner", "none", "--poisoner", "random-noise", "--unlearner", "finetune", "--unlearner", "gradient-ascent",
         "--attack", "none", "--attack", "weight-noise", "--metric", "clean-accuracy", "--metric", "unlearning-accuracy",
         "--metric", "mia-efficacy", "--metric", "avg-gap"]
ISOLATED = ["--poisoner", "none", "--unlearner", "finetune", "--attack", "none", "--attack", "weight-noise",
            "--metric", "unlearning-accuracy"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=30, help="SIGKILLs in the chaos scenario")
    p.add_argument("--corrupt", type=int, default=40, help="damaged cache files (in rounds of 10)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of three concurrent runs")
    p.add_argument("--fuzz", type=int, default=200, help="hypothesis examples per fuzzed input kind")
    p.add_argument("--seed", type=int, default=20261123)
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.json")
    a = p.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from conftest import TINY_SUITE

    from dememo.testing import faults

    rows, started = {}, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        suite = work / "tiny.toml"
        suite.write_text(TINY_SUITE)
        reference = faults.reference_run(str(suite), work, EXTRA)

        def timed(name, run):
            t = time.perf_counter()
            tally = run()
            rows[name] = {**tally.to_json(), "seconds": round(time.perf_counter() - t, 1)}
            print(f"{name}: {tally.tried} tried, {tally.handled} handled, {tally.lost} lost", file=sys.stderr)

        timed("chaos", lambda: faults.chaos(str(suite), work, reference, a.kills, a.seed, EXTRA, window=(1.0, 5.0)))

        def concurrency():
            total = faults.Tally("concurrency")
            at = EXTRA.index("gradient-ascent")
            narrower = EXTRA[:at - 1] + EXTRA[at + 1:]
            for r in range(a.rounds):
                total.add(faults.concurrency(str(suite), work / f"round-{r}", reference, [EXTRA, narrower, EXTRA]))
            return total

        (work / "round-0").mkdir()
        for r in range(1, a.rounds):
            (work / f"round-{r}").mkdir()
        timed("concurrency", concurrency)

        def corruption():
            total = faults.Tally("corruption")
            for r in range(max(1, a.corrupt // 10)):
                (work / f"corrupt-{r}").mkdir()
                total.add(faults.corruption(str(suite), work / f"corrupt-{r}", reference, 10, a.seed + r, EXTRA))
            return total

        timed("corruption", corruption)
        timed("disk-full", lambda: faults.disk_full(str(suite), work, reference,
                                                    [1_000, 5_000, 20_000, 60_000, 150_000, 400_000, 1_000_000], EXTRA))
        (work / "iso").mkdir()
        iso_reference = faults.reference_run(str(suite), work / "iso", ISOLATED)
        timed("isolation", lambda: faults.isolation(str(suite), work / "iso", iso_reference, ISOLATED,
                                                    ["segfault", "hang", "leak", "exit"], timeout=6, memory_gib=1.5))
        timed("numerical", lambda: faults.numerical(str(suite), work, reference, EXTRA))
    try:
        from dememo.testing.fuzz import fuzz_report
    except ImportError:
        fuzz_report = None
    if fuzz_report is not None:
        t = time.perf_counter()
        for kind, tally in fuzz_report(a.fuzz).items():
            rows[f"fuzz: {kind}"] = {**tally, "seconds": None}
        print(f"fuzz: {round(time.perf_counter() - t, 1)} s", file=sys.stderr)

    table = [[name, r["tried"], r["handled"], r["lost"]] for name, r in rows.items()]
    print(tabulate(table, headers=["category", "cases tried", "handled correctly", "results lost"], tablefmt="github"))
    for name, r in rows.items():
        for note in r.get("notes", [])[:3]:
            print(f"  {name}: {note}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"categories": rows, "seconds": round(time.perf_counter() - started, 1),
                                  "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                              "platform": platform.platform()},
                                  "args": {k: str(v) for k, v in vars(a).items()}}, indent=1) + "\n")
    print(f"wrote {a.json}", file=sys.stderr)
    if any(r["lost"] or r["handled"] != r["tried"] for r in rows.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
