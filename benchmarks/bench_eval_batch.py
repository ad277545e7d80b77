"""Evaluation on a CPU: images per second of a forward pass (and of an input gradient, the inner step of
PGD-style attacks) at batch sizes 16 … 2,048, with glibc's default allocator and after
``dememo.engine.devices.tune_allocator``, for each shipped architecture on its quick-suite input shape (and
resnet18 on CIFAR-sized inputs), with one intra-op thread (the harness default).

    python benchmarks/bench_eval_batch.py [--json benchmarks/results/eval-batch.json]

Prints, per architecture, the former setting (default allocator; batches of 2,048 images for a forward pass,
1,024 for the residual-knowledge metric's input gradients) against the harness's now (tuned allocator,
``dememo.training.eval_batch_size``), and the best batch measured. Most of the gain is the allocator: once
it is tuned, the batch size matters little for these models. Random weights and inputs: the cost does
not depend on their values. Quote the ratios (one process, back to back; the default allocator is measured
first, as it cannot be restored once tuned).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dememo import plugins
from dememo.engine.devices import tune_allocator, use_threads
from dememo.training import eval_batch_size, place

SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048)
CASES = (("small-cnn", (3, 16, 16)), ("mlp", (1, 8, 8)), ("resnet18", (3, 32, 32)))


def seconds_per_image(fn, x: torch.Tensor, batch: int, repeats: int = 3) -> float:
    """Seconds per image of ``fn`` over ``x`` in batches of ``batch``: the best of ``repeats`` sweeps (after
    one warm-up sweep)."""
    def sweep() -> float:
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            fn(x[i : i + batch])
        return time.perf_counter() - start

    sweep()
    return min(sweep() for _ in range(repeats)) / len(x)


def cases(registry) -> list[tuple[str, tuple[int, ...], object, object, torch.Tensor]]:
    """(architecture, input shape, forward fn, input-gradient fn, images) for each measured architecture."""
    out = []
    for name, shape in CASES:
        model = place(registry.get("architecture", name)().build(shape, 10), "cpu").eval()
        for p in model.parameters():
            p.requires_grad_(False)
        x = torch.rand(512 if name == "resnet18" else 2048, *shape).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (len(x),))

        def forward(xb, model=model):
            with torch.inference_mode():
                model(xb)

        def input_grad(xb, model=model, y=y):
            xb = xb.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xb), y[: len(xb)], reduction="sum"), xb)

        out.append((name, shape, forward, input_grad, x))
    return out


OLD = {"forward": 2048, "input_grad": 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "eval-batch.json")
    args = ap.parse_args()
    use_threads(1)
    measured = cases(plugins.get_registry())
    # the former setting first: once tuned, glibc's default (adaptive) threshold cannot be restored
    before = {(name, what): seconds_per_image(fn, x, min(OLD[what], len(x)))
              for name, _, fwd, grad, x in measured for what, fn in (("forward", fwd), ("input_grad", grad))}
    tuned = tune_allocator()
    out: dict[str, object] = {"threads": 1, "allocator_tuned": tuned,
                              "machine": {"platform": platform.platform(), "torch": torch.__version__}}
    for name, shape, fwd, grad, x in measured:
        chosen = eval_batch_size(x)
        row: dict[str, object] = {"shape": list(shape), "chosen_batch": chosen}
        for what, fn in (("forward", fwd), ("input_grad", grad)):
            per = {b: seconds_per_image(fn, x, b) for b in SIZES if b <= len(x)}
            best = min(per, key=per.get)
            old = before[(name, what)]
            row[what] = {"before_images_per_second": round(1 / old, 1),
                         "images_per_second": {b: round(1 / s, 1) for b, s in per.items()}, "best_batch": best,
                         "now_over_before": round(old / per[chosen], 2)}
            print(f"{name:10s} {what:10s} before {1 / old:8.0f}/s  now (batch {chosen}) {1 / per[chosen]:8.0f}/s "
                  f"= {old / per[chosen]:.2f}x   best batch {best} ({1 / per[best]:.0f}/s)")
        out[name] = row
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
