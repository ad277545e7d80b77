"""Paper-scale speed: training throughput of ``resnet18`` and ``airbench`` on CIFAR-10-sized data, and the
wall time of the whole ``cifar10-fast`` leaderboard, compared with the published references.

    python benchmarks/bench_gpu.py [--device cuda] [--steps 50] [--batch 512] [--precision bf16] [--compile]
                                   [--leaderboard --data-dir DIR] [--json benchmarks/results/gpu.json]

Throughput: images per second of dememo's standard training step (``dememo.training.fit``: data resident on
the device, channels-last, the suite's optimiser) on 3×32×32 images already on the device, after a warm-up;
synthetic images, so no dataset is needed (speed does not depend on pixel values). From it, the time of one
CIFAR-10 training run (50,000 images × the suite's epochs) is extrapolated and set beside the references:
ResNet-18 ≈ 7 min to 96 % on an A100 (the usual recipe), airbench ≈ 3 s to 94 % on an A100 (arXiv
2404.00498). ``--leaderboard`` also times ``dememo-bench --all --suite cifar10-fast`` (needs the CIFAR-10
files in ``--data-dir``; add ``--download`` there once).

Without a GPU the script still runs with ``--device cpu`` (a smoke test of the measurement, not a figure to
quote); figures for the README come from a GPU machine. Quote ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import attrs
import torch

from dememo import plugins
from dememo.context import Context, seeded_generator
from dememo.data import Data
from dememo.planning.planner import Planner
from dememo.planning.suite import load_suite

REFERENCES = {"resnet18": {"seconds": 7 * 60, "accuracy": 0.96, "device": "A100", "source": "standard ResNet-18 CIFAR-10 recipe"},
              "airbench": {"seconds": 3.0, "accuracy": 0.94, "device": "A100", "source": "airbench94, arXiv 2404.00498"}}


def throughput(suite_name: str, device: torch.device, steps: int, batch: int, precision: str, compiled: bool) -> dict:
    suite = load_suite(suite_name)
    entry = suite.datasets[0]
    config = Planner(plugins.get_registry(), suite).dataset_config(entry)
    recipe = attrs.evolve(config.entry.recipe, batch_size=batch, precision=precision, compile=compiled)
    g = torch.Generator(device=device).manual_seed(0)
    n = batch * steps
    x = torch.rand((n, 3, 32, 32), generator=g, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (n,), generator=g, device=device)
    data = Data(x=x, y=y, num_classes=10, fingerprint="bench")
    ctx = Context(device=device, seed=0, generator=seeded_generator(0, device), recipe=recipe,
                  architecture=config.architecture.obj, input_shape=(3, 32, 32), num_classes=10)
    model = ctx.new_model(data)
    warm = data.subset(torch.arange(min(n, 3 * batch), device=device), "warm")
    ctx.fit(model, warm, epochs=1)  # compilation, cuDNN autotuning, allocator warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    ctx.fit(model, data, epochs=1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    per_s = n / seconds
    run = 50_000 * config.entry.recipe.epochs / per_s
    ref = REFERENCES[config.architecture.name]
    return {"suite": suite_name, "architecture": config.architecture.name, "batch": batch, "steps": steps,
            "precision": precision, "compile": compiled, "images_per_second": round(per_s, 1),
            "epochs": config.entry.recipe.epochs, "cifar10_run_seconds": round(run, 2), "reference": ref,
            "run_vs_reference": round(run / ref["seconds"], 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--leaderboard", action="store_true", help="also time dememo-bench --all --suite cifar10-fast")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/gpu.json"))
    args = p.parse_args()
    device = torch.device(args.device)
    out = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
           "torch": torch.__version__, "machine": platform.machine(), "runs": []}
    if device.type != "cuda":
        print("no GPU: a smoke test of the measurement on the CPU, not a figure to quote", file=sys.stderr)
    for suite in ("cifar10", "cifar10-fast"):
        result = throughput(suite, device, args.steps, args.batch, args.precision, args.compile)
        out["runs"].append(result)
        print(f"{result['architecture']:>9}: {result['images_per_second']:>9.1f} images/s → one CIFAR-10 run "
              f"({result['epochs']} epochs) ≈ {result['cifar10_run_seconds']:.1f} s; reference "
              f"{result['reference']['seconds']} s on an {result['reference']['device']} "
              f"(ratio {result['run_vs_reference']})")
    if args.leaderboard:
        cmd = [sys.executable, "-c", "from dememo.cli import entry; entry()", "--all", "--suite", "cifar10-fast", "--device", args.device, "--quiet"]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        out["leaderboard"] = {"seconds": round(time.perf_counter() - start, 1), "returncode": proc.returncode}
        print(f"cifar10-fast leaderboard: {out['leaderboard']['seconds']} s (exit {proc.returncode})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
