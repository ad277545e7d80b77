"""The one standard training loop and batched prediction, shared by the harness and every plugin.

Data stays on its device; a batch is an index into resident tensors (airbench style), so there is no
DataLoader, no worker process and no per-batch host copy. Shuffling uses the caller's seeded generator,
which makes a fit a pure function of (model init, data, recipe, generator state).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from dememo.data import Data

LossFn = Callable[..., torch.Tensor]


@attrs.frozen
class Recipe:
    """A training recipe: SGD with Nesterov momentum and a per-step learning-rate schedule.

    ``onecycle`` rises linearly from ``lr/10`` to ``lr`` over the first ``warmup`` fraction of steps, then
    falls linearly to zero; ``cosine`` anneals from ``lr`` to zero; ``constant`` keeps ``lr``.

    GPU options (they change speed, and results only within floating-point rounding): ``precision =
    "bf16"`` runs the forward pass and loss of every fit under bfloat16 autocast (weights, optimiser state
    and gradients stay float32; prediction and every metric stay float32, so what a method computes from a
    model is unchanged); ``compile = true`` trains through ``torch.compile(model)`` (the module object and
    its state dict are the uncompiled one). Both enter the cache key only when set (``spec``), so caches
    written before they existed stay valid.
    """

    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup: float = 0.25
    label_smoothing: float = 0.0
    optimizer: Literal["sgd", "adam"] = "sgd"
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False

    def __attrs_post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or not 0 <= self.lr < math.inf:
            raise ValueError("recipe needs epochs ≥ 0, batch_size ≥ 1 and a finite lr ≥ 0")

    def spec(self) -> dict[str, object]:
        """Identity for cache keys: every field, the speed options only when set away from their defaults."""
        out = attrs.asdict(self)
        for name in ("precision", "compile"):
            if out[name] == attrs.fields_dict(Recipe)[name].default:
                del out[name]
        return out


def autocast(recipe: Recipe, device: torch.device):
    """The recipe's mixed-precision context for a forward pass on ``device`` (a no-op for fp32)."""
    import contextlib

    if recipe.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lr_factor(schedule: str, step: int, total: int, warmup: float) -> float:
    """Multiplier of the base learning rate at ``step`` of ``total``."""
    if schedule == "constant" or total <= 1:
        return 1.0
    t = step / total
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "onecycle":
        if warmup > 0 and t < warmup:
            return 0.1 + 0.9 * t / warmup
        return max(0.0, (1 - t) / (1 - warmup)) if warmup < 1 else 1.0
    raise ValueError(f"unknown schedule {schedule!r}")


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None, shuffle: bool = True) -> Iterator[torch.Tensor]:
    """Index tensors covering ``range(n)`` once, shuffled with ``generator`` (on the generator's device)."""
    device = generator.device if generator is not None else torch.device("cpu")
    order = torch.randperm(n, generator=generator, device=device) if shuffle else torch.arange(n, device=device)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def cycle_batches(data: Data, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches of ``data`` (a fresh permutation each pass)."""
    if len(data) == 0:
        raise ValueError("cannot draw batches from empty data")
    while True:
        for idx in batch_indices(len(data), batch_size, generator):
            idx = idx.to(data.device)
            yield data.x[idx], data.y[idx]


@attrs.define
class History:
    """Per-epoch records of a fit: mean training loss and, if asked for, accuracy on ``eval_data``."""

    epochs: list[dict[str, float]] = attrs.field(factory=list)

    def column(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs if key in e]

    def to_json(self) -> list[dict[str, float]]:
        return list(self.epochs)


def make_optimizer(params: Iterable[nn.Parameter], kind: str, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {kind!r}")


def fit(
    model: nn.Module,
    data: Data,
    *,
    recipe: Recipe,
    generator: torch.Generator,
    epochs: int | None = None,
    steps: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    schedule: str | None = None,
    weight_decay: float | None = None,
    momentum: float | None = None,
    optimizer: str | None = None,
    label_smoothing: float | None = None,
    loss: LossFn | None = None,
    paired: Data | None = None,
    parameters: Iterable[nn.Parameter] | None = None,
    grad_clip: float | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    after_epoch: Callable[[nn.Module, int], None] | None = None,
    eval_data: Data | None = None,
    progress: Callable[[Iterable, str, int], Iterable] | None = None,
    desc: str = "fit",
) -> History:
    """Train ``model`` in place on ``data`` and return its history.

    Any keyword left ``None`` takes the recipe's value (``label_smoothing = 0.0`` trains on plain
    cross-entropy whatever the recipe says). ``loss(model, x, y)`` replaces cross-entropy
    (return the quantity to *minimise*: gradient ascent returns ``-CE``). With ``paired``, every step also
    draws a batch from ``paired`` (cycled independently) and the loss is called as
    ``loss(model, x, y, px, py)``, e.g. retain and forget batches for NegGrad+. ``parameters`` restricts
    what the optimiser updates; ``after_step`` runs after every optimiser step (e.g. re-apply a mask);
    ``after_epoch(model, epoch)`` after the last step of every epoch (epochs counted from 1, the model in
    train mode, before ``eval_data`` is evaluated), e.g. to keep the best epoch's weights.
    ``steps`` trains for exactly that many optimiser steps instead of whole epochs (the schedule then
    spans those steps), for bi-level methods that alternate a few model steps with other work.
    """
    epochs = recipe.epochs if epochs is None else epochs
    lr = recipe.lr if lr is None else lr
    batch_size = recipe.batch_size if batch_size is None else batch_size
    schedule = recipe.schedule if schedule is None else schedule
    weight_decay = recipe.weight_decay if weight_decay is None else weight_decay
    momentum = recipe.momentum if momentum is None else momentum
    optimizer = recipe.optimizer if optimizer is None else optimizer
    if loss is None:
        smoothing = recipe.label_smoothing if label_smoothing is None else label_smoothing

        def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(m(x), y, label_smoothing=smoothing)

    history = History()
    if (epochs == 0 if steps is None else steps == 0) or len(data) == 0:
        return history
    trained = torch.compile(model) if recipe.compile else model  # the loss sees the compiled module
    precision = autocast(recipe, data.device)
    opt = make_optimizer(model.parameters() if parameters is None else parameters, optimizer, lr, momentum, weight_decay)
    steps_per_epoch = math.ceil(len(data) / batch_size)
    if steps is not None:
        epochs = math.ceil(steps / steps_per_epoch)
    total = epochs * steps_per_epoch if steps is None else steps
    partner = cycle_batches(paired, batch_size, generator) if paired is not None else None
    step = 0
    model.train()
    epoch_iter: Iterable[int] = range(epochs)
    if progress is not None:
        epoch_iter = progress(epoch_iter, desc, epochs)
    for epoch in epoch_iter:
        running, count = torch.zeros((), device=data.device), 0
        for idx in batch_indices(len(data), batch_size, generator):
            if step >= total:
                break
            idx = idx.to(data.device)
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor(schedule, step, total, recipe.warmup)
            x, y = data.x[idx], data.y[idx]
            with precision:
                value = loss(trained, x, y, *next(partner)) if partner is not None else loss(trained, x, y)
            value = value.float()
            opt.zero_grad(set_to_none=True)
            value.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            if after_step is not None:
                after_step(model)
            running += value.detach() * len(idx)
            count += len(idx)
            step += 1
        if after_epoch is not None:
            after_epoch(model, epoch + 1)
        record = {"epoch": epoch + 1, "loss": float(running) / max(count, 1)}
        if eval_data is not None:
            record["eval_acc"] = accuracy(model, eval_data)
            model.train()
        history.epochs.append(record)
    model.eval()
    return history


def place(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move ``model`` to ``device``; convolution weights go channels-last (NHWC), which oneDNN on CPU and
    tensor cores on GPU prefer: measured 40 % faster training of ``small-cnn`` on 2 CPU cores. Inputs
    may stay in the default layout; the result is numerically equivalent up to summation order."""
    model = model.to(device)
    if any(p.dim() == 4 for p in model.parameters()):
        model = model.to(memory_format=torch.channels_last)
    return model


#: on a CPU, an evaluation batch holds about this many input values, and at most ``MAX_CPU_EVAL_BATCH``
#: images, so a batch's activations stay near the core's caches (``benchmarks/bench_eval_batch.py``, with
#: ``run.devices.tune_allocator``: small-cnn on 16×16×3 images is fastest at 128-256 images, resnet18 on
#: 32×32×3 at 64, the digits MLP at 512-1,024; with the allocator tuned the batch matters far less than
#: without it, where it decided most of the difference)
CPU_EVAL_VALUES = 2**18
MAX_CPU_EVAL_BATCH = 1024
#: evaluation batch on accelerators
ACCELERATOR_EVAL_BATCH = 2048


def eval_batch_size(x: torch.Tensor) -> int:
    """Images per forward pass when evaluating (or attacking) a model on ``x`` without training it: on a
    CPU the power of two nearest ``CPU_EVAL_VALUES`` input values per batch (16 to ``MAX_CPU_EVAL_BATCH``
    images), elsewhere ``ACCELERATOR_EVAL_BATCH``. Each image's output does not depend on the batch it is in
    (eval mode), so this changes speed only (and float summation order in the kernels)."""
    if x.device.type != "cpu":
        return ACCELERATOR_EVAL_BATCH
    per_image = max(1, math.prod(x.shape[1:]))
    return int(min(MAX_CPU_EVAL_BATCH, max(16, 2 ** round(math.log2(CPU_EVAL_VALUES / per_image)))))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Logits of ``model`` on ``x``, in eval mode and batches (default ``eval_batch_size``); the model's
    previous mode is restored."""
    was_training = model.training
    model.eval()
    try:
        if len(x) == 0:
            return torch.empty(0, device=x.device)
        batch_size = batch_size or eval_batch_size(x)
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def accuracy(model: nn.Module, data: Data, batch_size: int | None = None) -> float:
    """Fraction of ``data`` that ``model`` classifies correctly (NaN for empty data)."""
    if len(data) == 0:
        return float("nan")
    return float((predict(model, data.x, batch_size).argmax(1) == data.y).float().mean())
