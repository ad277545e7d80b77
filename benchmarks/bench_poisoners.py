"""Time the generation of every installed poisoner, as a ratio to one standard training run.

    python benchmarks/bench_poisoners.py [--poisoners em,tap] [--seed 0] [--json PATH]
    python benchmarks/bench_poisoners.py --device cuda --cifar-sized [--poisoners ...] [--epochs N]

Default: the noisy-shapes training split (1,500 × 3×16×16, 10 classes) with the quick suite's
architecture, recipe, budgets and poisoner parameters (every suite variant, e.g. em sample- and
class-wise), exactly as ``dememo-bench`` configures them. ``--cifar-sized``: random data the size of
CIFAR-10's training set (50,000 × 3×32×32, 10 classes) with a registered ResNet-like architecture if one
is installed (else small-cnn), the same recipe and parameters, and budgets L∞ 8/255, L2 1.0, L0 1.
``--params defaults`` uses the classes' (paper) defaults instead of the suite's parameters; ``--set
tap.steps=10`` overrides one parameter (as with ``dememo-bench``), e.g. to time a proposed suite setting.

Each poisoner runs once, after one standard training of the clean data with the recipe (the reference
time, measured in the same process so that the ratio is comparable across noisy shared machines;
absolute seconds are not). Poisoners that craft on a model trained on the clean data (``ctx.train``:
TAP, HYPO) get that reference model from a cache, as in a benchmark run, where the clean reference is
trained once and shared: their time is the crafting alone. Every output is checked with
``dememo.budget.check_poison``; a poisoner that fails is recorded with its error and the rest go on.
Results are printed and written as JSON (default ``benchmarks/results/poisoners.json``, or
``poisoners-cifar-sized.json`` with ``--cifar-sized``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import attrs
import torch

from dememo import plugins
from dememo.budget import Budget, check_poison
from dememo.engine.devices import resolve_device
from dememo.context import Context, seeded_generator, standard_training
from dememo.data import Data
from dememo.environment import fingerprint
from dememo.hashing import derive_seed
from dememo.params import build, parse_sets
from dememo.planning.planner import Planner
from dememo.planning.suite import load_suite

CIFAR_BUDGETS = {"linf": 8 / 255, "l2": 1.0, "l0": 1.0, "none": float("inf")}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_cifar_sized(device: torch.device, seed: int, n: int = 50_000) -> Data:
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g, device=device)
    y = torch.arange(n, device=device) % 10
    return Data.from_tensors(x, y, 10, tag=f"random-cifar-sized:{seed}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--poisoners", default="", help="comma-separated names (default: every installed poisoner)")
    p.add_argument("--suite", default="quick")
    p.add_argument("--dataset", default="noisy-shapes", help="the suite's dataset entry whose settings are used")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cifar-sized", action="store_true", help="random 50,000×3×32×32 data, 10 classes")
    p.add_argument("--params", choices=["suite", "defaults"], default="suite")
    p.add_argument("--set", action="append", default=[], metavar="PLUGIN.PARAM=VALUE",
                   help="override a poisoner parameter, as with dememo-bench --set (repeatable)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (reference and ctx.fit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training samples (smoke tests)")
    a = p.parse_args()

    device = resolve_device(a.device)
    registry = plugins.get_registry()
    suite = load_suite(a.suite)
    planner = Planner(registry, suite, parse_sets(a.set))
    entry = suite.dataset(a.dataset)
    config = planner.dataset_config(entry)
    recipe = entry.recipe if a.epochs is None else attrs.evolve(entry.recipe, epochs=a.epochs)

    if a.cifar_sized:
        data = random_cifar_sized(device, a.seed)
        resnets = [n for n in registry.names("architecture") if "resnet" in n]
        arch = planner.configure("architecture", resnets[0])[0].obj if resnets else config.architecture.obj
        budgets = CIFAR_BUDGETS
        what = "random CIFAR-10-sized data (50000×3×32×32, 10 classes)"
    else:
        splits = config.dataset.obj.load(None, False).to(device)  # type: ignore[attr-defined]
        data = splits.train
        arch = config.architecture.obj
        budgets = {**CIFAR_BUDGETS, **config.budgets}
        what = f"{entry.name} train split ({len(data)}×{'×'.join(map(str, data.shape))}, {data.num_classes} classes)"

    if a.limit is not None:
        data = data.subset(torch.arange(min(a.limit, len(data)), device=device), f"first-{a.limit}")
        what += f", first {len(data)} samples"
    names = [n.strip() for n in a.poisoners.split(",") if n.strip()] or registry.names("poisoner")
    for name in names:
        registry.get("poisoner", name)  # unknown names fail before any work

    def context(purpose: str, budget: Budget | None, trainer=None) -> Context:
        return Context(device=device, seed=a.seed, generator=seeded_generator(derive_seed(a.seed, purpose), device),
                       recipe=recipe, architecture=arch, input_shape=data.shape, num_classes=data.num_classes,
                       budget=budget, trainer=trainer)

    print(f"data: {what}; architecture {arch.name}; recipe {recipe.epochs} epochs, batch {recipe.batch_size}; "
          f"device {device}", flush=True)
    # warm-up (allocator, kernels, oneDNN primitives), then the reference: one standard training
    warm = context("warm-up", None)
    warm.fit(warm.new_model(), data, steps=5)
    sync(device)
    start = time.perf_counter()
    reference = standard_training(context("reference", None), data)
    sync(device)
    train_seconds = time.perf_counter() - start
    print(f"standard training: {train_seconds:.2f} s", flush=True)

    def cached_trainer(d: Data):
        if d.fingerprint == data.fingerprint:
            return copy.deepcopy(reference[0]), reference[1]
        return standard_training(context("trainer", None), d)

    rows = []
    for name in names:
        if a.params == "suite":
            objs = [(v.label, v.obj) for v in planner.configure("poisoner", name, entry=entry)]
        else:  # the class defaults, with --set applied
            obj = build(registry.get("poisoner", name), planner.sets.get(name, {}), f"$.{name}")
            objs = [(obj.label(), obj)]
        for label, obj in objs:
            budget = Budget(obj.norm, budgets[obj.norm])  # type: ignore[attr-defined]
            ctx = context(f"poison:{label}", budget, cached_trainer)
            row = {"poisoner": name, "label": label, "params": obj.params(), "budget": budget.describe()}
            try:
                sync(device)
                start = time.perf_counter()
                out = obj.poison(data, ctx)  # type: ignore[attr-defined]
                sync(device)
                seconds = time.perf_counter() - start
                check_poison(data.x, out, budget)
                row.update(status="ok", seconds=round(seconds, 3), over_training=round(seconds / train_seconds, 4))
                print(f"  {label:<40} {seconds:9.2f} s  {seconds / train_seconds:8.3f} × training", flush=True)
            except Exception as exc:  # record and go on: one broken poisoner must not hide the others
                row.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500])
                print(f"  {label:<40} FAILED: {row['error']}", flush=True)
            rows.append(row)
            del ctx
            if device.type == "cuda":
                torch.cuda.empty_cache()

    report = {
        "data": what,
        "suite": a.suite if a.params == "suite" else None,
        "params": a.params,
        "set": a.set,
        "architecture": arch.name,
        "recipe": attrs.asdict(recipe),
        "seed": a.seed,
        "standard_training_seconds": round(train_seconds, 3),
        "poisoners": rows,
        "machine": {**fingerprint(device), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads()},
    }
    default = "poisoners-cifar-sized.json" if a.cifar_sized else "poisoners.json"
    path = a.json or Path(__file__).parent / "results" / default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    if any(r["status"] != "ok" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
