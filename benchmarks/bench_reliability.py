"""Reliability figures (issue 9): per fault category, cases tried, cases handled correctly, results lost.

    python benchmarks/bench_reliability.py [--kills 30] [--corrupt 40] [--fuzz 200] [--json benchmarks/results/reliability.json]

Runs the scenarios of ``tests/qa/faults.py`` (the same code tests/system/test_chaos.py runs with fewer cases)
on a slice of the tiny test suite (digits, both tracks, 14 cells), each against one uninterrupted
reference run of the same cells:

- chaos: SIGKILL at seeded random moments, restart each time; every kill must leave a sound cache and whole
  cell files, and the final results must equal the reference number for number;
- concurrency: three runs with overlapping cells started at once on one cache, several rounds;
- corruption: cache files damaged by bit flips, truncation, emptying and deletion, then a re-run;
- disk-full: disks that fill after N bytes (a fault-injected ENOSPC on dememo's writes), then a re-run;
- isolation: ``--isolate`` with plugins that segfault, hang, leak memory and call os._exit;
- numerical: NaN/Inf images and weights, a changed architecture, in-place changes to shared data and models;
- plugin misbehaviour: plugins that modify what they read in place (the evaluated model, a reference model,
  memoised predictions, the forget set), change torch's global state or their own parameters, call
  ``sys.exit``, raise ``KeyboardInterrupt``, ``UserError`` or ``DatasetError``, or a dataset that cannot load
  (``tests/qa/misbehaving.py``), each in its own run on one cache, then a clean run on that cache;
- hostile bundle: forged copies of the first-party bundle (hash recomputed) under file names that sort first
  and last, claims on another distribution's plugins and rows, tampered reference rows, markup in names,
  duplicate content, a redefined column (``faults.hostile_bundles``): the genuine numbers must stay on the
  board or be held back with the conflict named, never replaced;
- fuzzing: malformed ``--set`` values, suite files, results.json, bundles and dataset files
  (``tests/qa/fuzz.py``).

"lost" counts reference cells whose numbers differ or are missing at the end, "wrong results served" numbers
served with another value than the reference's where a scenario tells the two apart (plugin misbehaviour,
hostile bundle; the older scenarios count a differing number as lost): both must be 0.
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
    p.add_argument("--only", action="append", default=[], metavar="CATEGORY",
                   help="run only this category (repeatable, e.g. --only 'plugin misbehaviour'); its row replaces the "
                   "one in an existing --json file, the other rows are kept")
    a = p.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from support import TINY_SUITE

    from qa import faults, misbehaving

    rows, started = {}, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        suite = work / "tiny.toml"
        suite.write_text(TINY_SUITE)
        reference = faults.reference_run(str(suite), work, EXTRA)

        def timed(name, run):
            if a.only and name not in a.only:
                return
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

        def misbehaviour():
            total = misbehaving.misbehaviour(str(suite), work, reference, EXTRA)
            total.add(misbehaving.dataset_failure(TINY_SUITE, work, reference, EXTRA))
            return total

        timed("plugin misbehaviour", misbehaviour)
        timed("hostile bundle", lambda: faults.hostile_bundles(work / "bundles", a.seed))
    try:
        from qa.fuzz import fuzz_report
    except ImportError:
        fuzz_report = None
    if fuzz_report is not None and (not a.only or any(o.startswith("fuzz") for o in a.only)):
        t = time.perf_counter()
        for kind, tally in fuzz_report(a.fuzz).items():
            rows[f"fuzz: {kind}"] = {**tally, "seconds": None}
        print(f"fuzz: {round(time.perf_counter() - t, 1)} s", file=sys.stderr)

    if a.only and a.json.exists():  # the other categories' rows of the earlier run, in their order
        earlier = json.loads(a.json.read_text())["categories"]
        rows = {name: rows.get(name, r) for name, r in earlier.items()} | rows
    table = [[name, r["tried"], r["handled"], r["lost"], r.get("wrong", 0)] for name, r in rows.items()]
    print(tabulate(table, headers=["category", "cases tried", "handled correctly", "results lost", "wrong results served"],
                   tablefmt="github"))
    for name, r in rows.items():
        for note in r.get("notes", [])[:3]:
            print(f"  {name}: {note}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"categories": rows, "seconds": round(time.perf_counter() - started, 1),
                                  "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                              "platform": platform.platform()},
                                  "args": {k: str(v) for k, v in vars(a).items()}}, indent=1) + "\n")
    print(f"wrote {a.json}", file=sys.stderr)
    if any(r["lost"] or r.get("wrong") or r["handled"] != r["tried"] for r in rows.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
