"""Training many small models: the vectorized ensemble (``dememo.ensemble``) against a Python loop of standard
trainings, on the quick suite's datasets and architectures, in one run on one machine.

    python benchmarks/bench_ensemble.py [--models 32] [--loop 8] [--memorization 256] [--memorization-on digits]
                                         [--device cpu]
                                         [--json benchmarks/results/ensemble.json]

For each embedded dataset: models per second of ``fit_many`` over ``--models`` members (70 % subsets, the
memorization setting) and of ``standard_training`` run ``--loop`` times on the first members' subsets (the
same computation: a test checks that the members equal the loop's models), and their ratio. Then the wall
time of exact Feldman–Zhang memorization scores with K = ``--memorization`` models (the ``memorization``
scorer: K subset trainings + one batched evaluation). Absolute seconds depend on the machine and its load;
quote the ratios, which are measured back to back in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import attrs
import torch

from dememo import plugins
from dememo.context import Context, seeded_generator, standard_training
from dememo.ensemble import fit_many
from dememo.planning.planner import Planner
from dememo.planning.suite import load_suite
from dememo.engine.devices import prepare_process


def context(config, splits, device: torch.device) -> Context:
    return Context(device=device, seed=0, generator=seeded_generator(0, device), recipe=config.entry.recipe,
                   architecture=config.architecture.obj, input_shape=splits.shape, num_classes=splits.num_classes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=32, help="ensemble size timed")
    p.add_argument("--loop", type=int, default=8, help="sequential trainings timed")
    p.add_argument("--memorization", type=int, default=256, help="K for the exact memorization timing (0: skip)")
    p.add_argument("--datasets", nargs="*", default=["digits", "noisy-shapes"])
    p.add_argument("--memorization-on", nargs="*", default=["digits"], help="datasets timed for exact memorization")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="vmap", help="ensemble backend timed: vmap (default), loop or auto")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the harness's, 1)")
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "ensemble.json")
    a = p.parse_args()
    prepare_process(a.threads)
    device = torch.device(a.device)
    suite = load_suite("quick", apply_tuning=False)
    planner = Planner(plugins.get_registry(), suite)
    rows = []
    for name in a.datasets:
        config = planner.dataset_config(suite.dataset(name))
        splits = config.dataset.obj.load(Path(tempfile.gettempdir()) / "dememo-bench-data", False).to(device)
        ctx = context(config, splits, device)
        train = splits.train
        size = round(0.7 * len(train))
        g = torch.Generator().manual_seed(0)
        masks = torch.stack([torch.randperm(len(train), generator=g)[:size] for _ in range(a.models)])
        masks = torch.zeros(a.models, len(train), dtype=torch.bool).scatter_(1, masks, True).to(device)
        seeds = list(range(a.models))
        fit_many(ctx, train, masks[:2], seeds[:2], backend=a.backend)  # warm-up (first-call dispatch, allocator)
        sync(device)
        start = time.perf_counter()
        ensemble = fit_many(ctx, train, masks, seeds, backend=a.backend)
        sync(device)
        vec = time.perf_counter() - start
        start = time.perf_counter()
        for k in range(a.loop):
            standard_training(attrs.evolve(ctx, seed=seeds[k]), train.subset(masks[k].nonzero().flatten(), "member"))
        sync(device)
        loop = time.perf_counter() - start
        acc = (ensemble.logits(splits.test.x).argmax(-1) == splits.test.y).float().mean(1)
        row = {"dataset": name, "architecture": config.architecture.label, "backend": a.backend, "params_per_model":
               sum(t.numel() for t in ensemble.params.values()) // len(ensemble),
               "ensemble_models": a.models, "ensemble_seconds": vec, "ensemble_models_per_s": a.models / vec,
               "loop_models": a.loop, "loop_seconds": loop, "loop_models_per_s": a.loop / loop,
               "speedup": (a.models / vec) / (a.loop / loop), "member_test_acc_mean": float(acc.mean())}
        if a.memorization and name in a.memorization_on:
            scorer = plugins.get_registry().get("metric", "memorization")(models=a.memorization)
            start = time.perf_counter()
            scores = scorer.score(train, ctx)
            sync(device)
            row |= {"memorization_models": a.memorization, "memorization_seconds": time.perf_counter() - start,
                    "memorization_mean": float(scores.mean())}
        rows.append(row)
        print(json.dumps(row))
    out = {"machine": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
           "threads": torch.get_num_threads(), "device": str(device),
           "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "torch": torch.__version__,
           "rows": rows}
    print(f"\n{'dataset':<14}{'arch':<11}{'ensemble models/s':>18}{'loop models/s':>15}{'speed-up':>10}{'FZ K':>6}{'FZ s':>8}")
    for r in rows:
        print(f"{r['dataset']:<14}{r['architecture']:<11}{r['ensemble_models_per_s']:>18.2f}{r['loop_models_per_s']:>15.2f}"
              f"{r['speedup']:>9.1f}×{r.get('memorization_models', 0):>6}{r.get('memorization_seconds', float('nan')):>8.1f}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.json}")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
