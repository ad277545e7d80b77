"""A new plugin author's path to a first row, timed step by step as a user runs it, for each family asked for.

    python benchmarks/bench_author_path.py [--family unlearner --family metric ...]
                                           [--json benchmarks/results/author_path.json]

For each family: ``dememo-bench new FAMILY my-FAMILY`` in a temporary directory; ``pip install`` of what it
wrote (offline, no dependencies: dememo is installed already, as it would be for someone writing a plugin);
the distribution's own tests (``python -m pytest``); ``dememo-bench --smoke`` with that plugin (a dataset or
architecture: ``--smoke --suite smoke.toml``) from an empty cache, and again warm. Each step is a fresh
process, as at a terminal; the cache is the run's own. Absolute seconds depend on the machine and its load
(one thread per worker, ``OMP_NUM_THREADS=1``); say whether it was idle.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAMILIES = ("poisoner", "unlearner", "attack", "metric", "dataset", "architecture")
FLAGS = {"poisoner": "--poisoner", "unlearner": "--unlearner", "attack": "--attack", "metric": "--metric"}


def timed(args: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def bench(family: str, base: Path) -> dict[str, float]:
    site, cache = base / "site", base / f"cache-{family}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEMEMO_PROGRESS": "0", "DEMEMO_CACHE_DIR": str(cache),
           "DEMEMO_TUNING_DIR": str(base / "tuning"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)}
    bench_cli = [sys.executable, "-c", "from dememo.cli import entry; entry()"]
    name = f"my-{family}"
    root = base / f"dememo-plugin-{name}"
    out = {"new": timed([*bench_cli, "new", family, name, "--dir", str(base)], env, base)}
    out["install"] = timed([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                            "--disable-pip-version-check", "--quiet", "--target", str(site), str(root)], env, base)
    out["tests"] = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], env, root)
    smoke = ["--smoke", FLAGS[family], name] if family in FLAGS else ["--smoke", "--suite", "smoke.toml"]
    out["smoke_cold"] = timed([*bench_cli, *smoke, "--quiet", "--out", str(base / f"out-{family}")], env, root)
    out["smoke_warm"] = timed([*bench_cli, *smoke, "--quiet", "--out", str(base / f"out-{family}")], env, root)
    out["first_row"] = out["new"] + out["install"] + out["tests"] + out["smoke_cold"]
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", action="append", choices=FAMILIES, default=[])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    families = args.family or list(FAMILIES)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            rows[family] = bench(family, Path(tmp))
            r = rows[family]
            print(f"{family:<13} new {r['new']:5.1f} s  install {r['install']:5.1f} s  tests {r['tests']:5.1f} s  "
                  f"smoke cold {r['smoke_cold']:5.1f} s, warm {r['smoke_warm']:5.1f} s  -> first row {r['first_row']:5.1f} s",
                  flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "families": rows},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
