"""Time ``dememo-bench --all`` cold (empty cache) and warm (same cache) on a suite; print per-stage times and
the top costs by plugin (each metric separately: cells record ``timings["metric:<name>"]``).

    python benchmarks/bench_quick.py [--suite quick] [--seeds N] [--jobs N] [--vs-one-process] [--beside]
                                     [--json benchmarks/results/quick.json] [-- more dememo-bench arguments]

``--vs-one-process`` also runs cold with ``--jobs 1`` and compares every number; ``--beside`` also runs cold
with a CPU-bound process beside it (the slowdown under load). Each run has its own cache, one at a time.

Per-stage figures are the compute seconds recorded for every stage computed in the cold run (shared
stages counted once). A stage's seconds include what it computed on the way (a metric that reads another
through ``ev.metric`` is billed that metric's computation when it is the first to ask for it; an unlearner
that retrains is billed the training), so the top costs name the plugin that caused the work. The warm/cold ratio is measured in one invocation, on the same machine, so it is
comparable across noisy shared machines; absolute seconds are not.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from dememo.cli import entry; entry()", *args],
                          capture_output=True, text=True, env={**os.environ, "DEMEMO_PROGRESS": "0"})
    if proc.returncode not in (0, 1):
        sys.exit(f"dememo-bench failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def _computed(results: dict):
    """(cell, stage name, seconds) for every stage the run computed (not read from the cache), each distinct
    stage output once; ``metrics`` (all of a cell's metrics together, wall clock) is yielded for every cell."""
    seen: set[tuple] = set()
    for cell in results["cells"]:
        for stage, t in cell["timings"].items():
            if stage == "metrics":
                yield cell, stage, t["seconds"]
                continue
            ident = (stage, cell["dataset"], cell["seed"], cell.get("poisoner"), cell.get("train_attack"),
                     cell.get("unlearner"), cell.get("forget"),
                     cell["attack"] if stage == "attack" or stage.startswith("metric:") else None)
            if stage == "train" and cell["track"] == "unlearning":
                ident = ("train", cell["dataset"], cell["seed"], "original")
            if ident not in seen and not t["cached"]:
                seen.add(ident)
                yield cell, stage, t["seconds"]


def stage_seconds(results: dict) -> dict[str, float]:
    """Compute seconds per stage kind (each metric is its own kind, ``metric:<name>``), each distinct stage
    output counted once; ``metrics`` is the wall clock of all metrics of every cell."""
    totals: dict[str, float] = collections.defaultdict(float)
    for _, stage, seconds in _computed(results):
        totals[stage] += seconds
    return dict(totals)


#: which plugin a stage's seconds belong to
STAGE_PLUGIN = {"poison": "poisoner", "train-attack": "train_attack", "unlearn": "unlearner", "attack": "attack"}


def plugin_seconds(results: dict) -> dict[str, float]:
    """Compute seconds per plugin ("unlearner scrub", "metric u-lira", ...): the stages it computed, each once.
    Standard trainings (original, retrain, references) are the harness's, under "training"."""
    totals: dict[str, float] = collections.defaultdict(float)
    for cell, stage, seconds in _computed(results):
        if stage.startswith("metric:"):
            totals[f"metric {stage.split(':', 1)[1]}"] += seconds
        elif stage in STAGE_PLUGIN and cell.get(STAGE_PLUGIN[stage]):
            family = "attack" if stage == "train-attack" else STAGE_PLUGIN[stage]
            totals[f"{family} {str(cell[STAGE_PLUGIN[stage]]).split('(')[0]}"] += seconds
        elif stage == "train" or stage.startswith("reference:"):
            totals["training"] += seconds
    return dict(totals)


def cold_run(common: list[str], tmp: str, name: str) -> tuple[float, dict]:
    """A cold run into its own cache: seconds and results."""
    seconds = run(common + ["--cache-dir", f"{tmp}/{name}-cache", "--out", f"{tmp}/{name}"])
    return seconds, json.loads(Path(f"{tmp}/{name}/results.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="quick")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--jobs", type=int, default=None, help="--jobs of the timed runs (default: the harness's)")
    p.add_argument("--vs-one-process", action="store_true",
                   help="also run cold with --jobs 1 (own cache): the ratio, and whether every number is the same")
    p.add_argument("--beside", action="store_true",
                   help="also run cold with a CPU-bound process beside it (own cache): the slowdown under load")
    p.add_argument("--json", type=Path, default=None, help="default: benchmarks/results/<suite>.json")
    p.add_argument("--keep", type=Path, default=None, help="copy the cold run's results directory here")
    p.add_argument("extra", nargs="*", help="more dememo-bench arguments after --, e.g. -- --poisoner em")
    a = p.parse_args()
    if a.json is None:
        a.json = Path(__file__).parent / "results" / f"{Path(a.suite).stem}.json"
    sys.path.insert(0, str(Path(__file__).parent))
    from compare_results import compare

    extra: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--all", "--suite", a.suite, "--quiet", *a.extra] + (["--seeds", str(a.seeds)] if a.seeds else [])
        timed = common + (["--jobs", str(a.jobs)] if a.jobs else [])
        list_seconds = run(["--list"])
        cold, results = cold_run(timed, tmp, "cold")
        if a.keep:
            shutil.copytree(f"{tmp}/cold", a.keep, dirs_exist_ok=True)
        # the same command again, as a user re-runs it: same cache, same output directory (its figures kept)
        warm = run(timed + ["--cache-dir", f"{tmp}/cold-cache", "--out", f"{tmp}/cold"])
        warm_results = json.loads(Path(f"{tmp}/cold/results.json").read_text())
        if a.vs_one_process:
            one, one_results = cold_run(common + ["--jobs", "1"], tmp, "one")
            diff = compare(one_results, results)
            same = not (diff["only_before"] or diff["only_after"] or diff["status"] or diff["values"] or diff["series"])
            extra["one_process"] = {"cold_seconds": round(one, 2), "speedup": round(one / cold, 3),
                                    "values_compared": diff["values_compared"], "identical": same}
        if a.beside:
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                loaded, _ = cold_run(timed, tmp, "beside")
            finally:
                busy.kill()
            extra["beside_one_busy_process"] = {"cold_seconds": round(loaded, 2), "slowdown": round(loaded / cold, 3)}
    stages = stage_seconds(results)
    by_plugin = plugin_seconds(results)
    all_cached = all(t["cached"] for c in warm_results["cells"] for s, t in c["timings"].items() if s != "metrics")
    env = results["environment"]
    report = {
        "suite": a.suite,
        "seeds": results["suite"]["seeds"] if not a.seeds else a.seeds,
        "args": a.extra,
        "cells": len(results["cells"]),
        "jobs": env.get("jobs"),
        "threads": env.get("threads"),
        "cold_seconds": round(cold, 2),
        "warm_seconds": round(warm, 2),
        "warm_over_cold": round(warm / cold, 4),
        "warm_all_stages_cached": all_cached,
        "list_seconds": round(list_seconds, 2),
        **extra,
        "stage_compute_seconds": {k: round(v, 2) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])},
        "plugin_compute_seconds": {k: round(v, 2) for k, v in sorted(by_plugin.items(), key=lambda kv: -kv[1])},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": env["torch"], "device": env["device"]},
    }
    print(f"suite {a.suite}: {report['cells']} cells, {report['jobs']} job(s) of {report['threads']} thread(s): "
          f"cold {cold:.1f}s, warm {warm:.1f}s (warm/cold = {report['warm_over_cold']:.1%}; every stage cached on "
          f"the warm run: {all_cached}); --list {list_seconds:.2f}s")
    if "one_process" in report:
        o = report["one_process"]
        print(f"  --jobs 1: cold {o['cold_seconds']:.1f}s, {o['speedup']:.2f}x the time of the timed run; "
              f"{o['values_compared']} values compared, identical: {o['identical']}")
    if "beside_one_busy_process" in report:
        b = report["beside_one_busy_process"]
        print(f"  beside one CPU-bound process: cold {b['cold_seconds']:.1f}s, {b['slowdown']:.2f}x the idle run")
    print("compute seconds per stage kind (cold run, shared stages once):")
    for stage, secs in report["stage_compute_seconds"].items():
        if not stage.startswith("metric:"):
            print(f"  {stage:<24} {secs:8.2f}")
    print("top costs by plugin (cold run, shared stages once; standard trainings under 'training'):")
    for name, secs in list(report["plugin_compute_seconds"].items())[:15]:
        print(f"  {name:<32} {secs:8.2f}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
