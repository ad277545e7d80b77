"""Many small models trained at once: a vectorized ensemble (``torch.func``) for the metrics that need tens
to hundreds of models (Feldman–Zhang memorization, U-LiRA shadows, forget quality's reference models).

Member ``k`` of ``fit_many(ctx, data, subsets, seeds)`` *is* standard training (``dememo.context.
standard_training``) on ``data.subset(subsets[k])`` with the cell seed replaced by ``seeds[k]``: the same
initial weights, the same batch order (a fresh ``randperm`` per epoch from the member's own generator),
the same recipe (SGD with Nesterov momentum or Adam, weight decay, learning-rate schedule, label smoothing).
Only the arithmetic is batched: the members' parameters are stacked along a leading dimension
(``torch.func.stack_module_state``) and one ``vmap`` over ``functional_call`` computes every member's loss
on its own batch in one call, so a step costs one batched kernel per layer instead of K small ones. Results
equal a Python loop over members up to floating-point summation order (a test checks this).

Models must hold no running statistics (BatchNorm buffers cannot be updated under ``vmap``): the
first-party architectures use GroupNorm. A model with BatchNorm layers gets a clear error.

Members may train on subsets of different sizes: a member whose epoch has fewer steps sits out the extra
steps (its parameters and optimiser state are left untouched), and a short last batch is padded with
zero-weight samples, so each member follows its own standard training exactly.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from dememo.data import Data, Task
from dememo.training import Recipe, lr_factor

#: activation memory one chunk of members may use while training (bytes, estimated by a probe forward)
CHUNK_BYTES = 512 * 2**20


def check_vectorizable(model: nn.Module) -> None:
    bad = [type(m).__name__ for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bad:
        raise ValueError(f"an ensemble cannot be vectorized over a model with {bad[0]} (running statistics do not "
                         "work under torch.func.vmap): use a GroupNorm or norm-free architecture")


@attrs.define(eq=False)
class Ensemble:
    """K models of one architecture, parameters stacked along dimension 0.

    ``subsets[k]`` (bool, one entry per sample of the data the ensemble was trained on) marks what member
    ``k`` learned from; ``seeds[k]`` its seed. ``key`` is the harness's cache key (empty when built outside
    a run). ``logits(x)`` evaluates every member at once (K×N×classes); ``model(k)`` is member ``k`` as an
    ordinary module; ``Ensemble.stack(models)`` builds one from modules (e.g. unlearned copies).
    """

    template: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    subsets: torch.Tensor
    seeds: tuple[int, ...]
    key: str = ""

    def __len__(self) -> int:
        return len(self.seeds)

    @classmethod
    def stack(cls, models: Sequence[nn.Module], subsets: torch.Tensor, seeds: Sequence[int], key: str = "") -> Ensemble:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        check_vectorizable(models[0])
        params, buffers = stack_module_state(list(models))
        params = {k: v.detach() for k, v in params.items()}
        template = copy.deepcopy(models[0]).to("meta")
        return cls(template, params, buffers, subsets, tuple(int(s) for s in seeds), key)

    def model(self, k: int) -> nn.Module:
        model = copy.deepcopy(self.template).to_empty(device=self.device)
        model.load_state_dict({**{n: p[k] for n, p in self.params.items()}, **{n: b[k] for n, b in self.buffers.items()}})
        model.eval()
        return model

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Logits of every member on ``x``: a K×N×classes tensor (inputs in batches)."""
        self.template.eval()

        def one(p, b, xb):
            return functional_call(self.template, (p, b), (xb,))

        batched = vmap(one, in_dims=(0, 0, None))
        parts = [batched(self.params, self.buffers, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return torch.cat(parts, dim=1) if parts else torch.empty(len(self), 0, device=x.device)

    def to_payload(self) -> dict[str, Any]:
        return {"params": {k: v.to("cpu") for k, v in self.params.items()},
                "buffers": {k: v.to("cpu") for k, v in self.buffers.items()},
                "subsets": self.subsets.to("cpu"), "seeds": torch.tensor(self.seeds, dtype=torch.int64)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any], template: nn.Module, device: torch.device) -> Ensemble:
        return cls(copy.deepcopy(template).to("meta"), {k: v.to(device) for k, v in payload["params"].items()},
                   {k: v.to(device) for k, v in payload["buffers"].items()}, payload["subsets"].to(device),
                   tuple(int(s) for s in payload["seeds"].tolist()))

    def member_task(self, k: int, data: Data, forget: torch.Tensor, val: Data) -> Task:
        """The task member ``k`` unlearns in a replay: of the samples of ``data`` it trained on, those
        ``forget`` (a bool mask over ``data``) marks are its forget set and the rest its retain set."""
        trained = self.subsets[k]
        dropped = trained & forget
        tag = f"member:{self.key}:{k}"
        return Task(data.subset((trained & ~dropped).nonzero().flatten(), f"retain:{tag}"),
                    data.subset(dropped.nonzero().flatten(), f"forget:{tag}"), val)


def subsets_of(masks: torch.Tensor, n: int) -> torch.Tensor:
    masks = torch.as_tensor(masks)
    if masks.dtype != torch.bool or masks.dim() != 2 or masks.shape[1] != n:
        raise ValueError(f"subsets must be a K×{n} boolean mask (one row per member), got {tuple(masks.shape)} {masks.dtype}")
    if not bool(masks.any(dim=1).all()):
        raise ValueError("every ensemble member needs at least one training sample")
    return masks


def member_positions(masks: torch.Tensor) -> list[torch.Tensor]:
    return [row.nonzero().flatten() for row in masks]


def _activation_floats(model: nn.Module, x: torch.Tensor) -> int:
    """Floats of every module output in one forward on ``x`` (the probe behind the chunk size)."""
    total = [0]

    def hook(_m, _i, out):
        if isinstance(out, torch.Tensor):
            total[0] += out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def default_chunk(model: nn.Module, data: Data, batch_size: int, k: int) -> int:
    """Members per chunk such that one chunk's activations (float32, ×4 for gradients and autograd's saved
    tensors) stay within ``CHUNK_BYTES``, probed with one batch."""
    per_model = 4 * 4 * _activation_floats(model, data.x[:batch_size])
    return max(1, min(k, CHUNK_BYTES // max(per_model, 1)))


def choose_backend(model: nn.Module, device: torch.device) -> str:
    """``vmap`` on accelerators, and on CPU for models without convolutions; ``loop`` for convolutional
    models on CPU, where the batched (grouped) convolutions and pooling that ``vmap`` produces are slower
    than a loop of ordinary ones (``benchmarks/bench_ensemble.py``: 2.6× faster for the quick suite's
    MLP, 0.8× for its small CNN on 2 CPU cores: both are compute-bound there, so batching saves only the
    per-step overhead)."""
    if device.type != "cpu":
        return "vmap"
    return "loop" if any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()) else "vmap"


def fit_many(ctx: Any, data: Data, subsets: torch.Tensor, seeds: Sequence[int], recipe: Recipe | None = None,
             chunk: int | None = None, desc: str = "ensemble", backend: str = "auto") -> Ensemble:
    """Train ``len(seeds)`` members; member ``k`` = ``standard_training`` on ``data.subset(subsets[k])``
    in the context ``ctx`` with ``seed = seeds[k]`` (see the module docstring). ``ctx`` is a
    ``dememo.Context``; ``recipe`` overrides its recipe. ``backend``: ``vmap`` (one batched step for all
    members of a chunk), ``loop`` (one member after the other; the same results up to floating-point
    summation order) or ``auto`` (``choose_backend``)."""
    masks = subsets_of(subsets, len(data)).to(data.device)
    if len(seeds) != len(masks):
        raise ValueError(f"{len(masks)} subsets but {len(seeds)} seeds")
    recipe = recipe or ctx.recipe
    positions = member_positions(masks)
    locals_ = [attrs.evolve(ctx, seed=int(s)).for_training_on(data.subset(pos, "member")) for s, pos in zip(seeds, positions)]
    # each member's init from its own generator (and data-dependent init from its own subset, as standard training)
    models = [local.new_model(data.subset(pos, "member")) for local, pos in zip(locals_, positions)]
    check_vectorizable(models[0])
    if backend == "auto":
        backend = choose_backend(models[0], data.device)
    if backend == "loop":
        for local, model, pos in ctx.progress(list(zip(locals_, models, positions)), desc, len(models)):
            attrs.evolve(local, recipe=recipe).fit(model, data.subset(pos, "member"), desc="member")
        return Ensemble.stack(models, masks, seeds)
    if backend != "vmap":
        raise ValueError(f"unknown ensemble backend {backend!r}: use auto, vmap or loop")
    chunk = chunk or default_chunk(models[0], data, recipe.batch_size, len(models))
    bounds = list(range(0, len(models), chunk))
    parts = [_fit_chunk(models[lo : lo + chunk], [g.generator for g in locals_[lo : lo + chunk]], positions[lo : lo + chunk],
                        data, recipe)
             for lo in (ctx.progress(bounds, desc, len(bounds)) if len(bounds) > 1 else bounds)]
    params = {n: torch.cat([p[n] for p, _ in parts]) for n in parts[0][0]}
    buffers = {n: torch.cat([b[n] for _, b in parts]) for n in parts[0][1]}
    return Ensemble(copy.deepcopy(models[0]).to("meta"), params, buffers, masks, tuple(int(s) for s in seeds))


def _fit_chunk(models: list[nn.Module], generators: list[torch.Generator], positions: list[torch.Tensor],
               data: Data, recipe: Recipe) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Train ``models`` together; returns their stacked (detached) parameters and buffers."""
    k, bs, device = len(models), recipe.batch_size, data.device
    steps = [math.ceil(len(p) / bs) for p in positions]
    most = max(steps)
    totals = [recipe.epochs * s for s in steps]
    params, buffers = stack_module_state(models)
    if recipe.epochs == 0:
        return {n: p.detach() for n, p in params.items()}, buffers
    # vmap folds the member dimension into batch or channel dimensions: plain (NCHW) strides avoid the
    # layout copies that channels-last tensors cost there (measured: most of a step's time on CPU)
    params = {n: p.detach().contiguous().requires_grad_(True) for n, p in params.items()}
    images = data.x.contiguous()
    template = copy.deepcopy(models[0]).to("meta")
    template.train()
    smoothing = recipe.label_smoothing

    def loss_of(p, b, x, y, w):
        out = functional_call(template, (p, b), (x,))
        ce = F.cross_entropy(out, y, reduction="none", label_smoothing=smoothing)
        return (ce * w).sum() / w.sum().clamp_min(1.0)

    batched_loss = vmap(loss_of)
    opt = _StackedOptimizer(params, recipe, k)
    uneven = len({len(p) for p in positions}) > 1  # else every member's step j has the same batch width
    counter = torch.zeros(k, device=device, dtype=torch.int64)
    for _epoch in range(recipe.epochs):
        # each member's epoch order, exactly as ``training.batch_indices`` draws it from its generator
        order = torch.full((k, most * bs), -1, dtype=torch.int64, device=device)
        for i, (gen, pos) in enumerate(zip(generators, positions)):
            perm = torch.randperm(len(pos), generator=gen, device=gen.device).to(device)
            order[i, : len(pos)] = pos[perm]
        order = order.view(k, most, bs)
        for j in range(most):
            idx = order[:, j, :]
            valid = idx >= 0
            active = valid.any(dim=1)
            safe = idx.clamp(min=0)
            if not uneven:  # equal sizes: a short last batch has the same width for all, so trim it
                width = int(valid[0].sum())
                safe, valid = safe[:, :width], valid[:, :width]
            x, y, w = images[safe], data.y[safe], valid.to(images.dtype)
            if uneven:
                factors = torch.tensor([lr_factor(recipe.schedule, c, t, recipe.warmup)
                                        for c, t in zip(counter.tolist(), totals)], device=device)
            else:
                factors = torch.full((k,), lr_factor(recipe.schedule, int(counter[0]), totals[0], recipe.warmup),
                                     device=device)
            losses = batched_loss(params, buffers, x, y, w)
            grads = torch.autograd.grad(losses.sum(), list(params.values()))
            opt.step(dict(zip(params, grads)), recipe.lr * factors, active if not bool(active.all()) else None)
            counter += active.to(counter.dtype)
    return {n: p.detach() for n, p in params.items()}, buffers


class _StackedOptimizer:
    """SGD (Nesterov momentum, L2 weight decay) or Adam applied to stacked parameters with a learning rate
    per member; the same arithmetic as ``torch.optim.SGD`` / ``torch.optim.Adam`` on each member alone.
    ``active`` (bool per member) leaves the other members' parameters and state untouched."""

    def __init__(self, params: dict[str, torch.Tensor], recipe: Recipe, k: int):
        self.params, self.recipe = params, recipe
        self.state: dict[str, dict[str, torch.Tensor]] = {n: {} for n in params}
        self.t = torch.zeros(k, dtype=torch.float64, device=next(iter(params.values())).device)

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor], lrs: torch.Tensor, active: torch.Tensor | None) -> None:
        r = self.recipe
        if active is not None:
            self.t += active.to(self.t.dtype)
        else:
            self.t += 1
        for name, p in self.params.items():
            shape = (-1,) + (1,) * (p.dim() - 1)
            g = grads[name]
            if r.weight_decay:
                g = g.add(p, alpha=r.weight_decay)
            state = self.state[name]
            if r.optimizer == "sgd":
                if r.momentum:
                    if "buf" not in state:
                        state["buf"] = g.clone()
                        new_buf = state["buf"]
                    else:
                        new_buf = state["buf"] * r.momentum + g
                        if active is not None:
                            new_buf = torch.where(active.view(shape), new_buf, state["buf"])
                        state["buf"] = new_buf
                    g = g + r.momentum * new_buf  # Nesterov (``make_optimizer`` sets nesterov when momentum > 0)
                update = g * lrs.to(p.dtype).view(shape)
            elif r.optimizer == "adam":
                b1, b2, eps = 0.9, 0.999, 1e-8
                m = state.get("m", torch.zeros_like(p)) * b1 + (1 - b1) * g
                v = state.get("v", torch.zeros_like(p)) * b2 + (1 - b2) * g * g
                if active is not None and "m" in state:
                    m = torch.where(active.view(shape), m, state["m"])
                    v = torch.where(active.view(shape), v, state["v"])
                state["m"], state["v"] = m, v
                t = self.t.clamp(min=1)
                c1 = (1 - b1 ** t).to(p.dtype).view(shape)
                c2 = (1 - b2 ** t).to(p.dtype).view(shape)
                update = (lrs.to(p.dtype).view(shape) / c1) * m / (v.sqrt() / c2.sqrt() + eps)
            else:
                raise ValueError(f"unknown optimizer {r.optimizer!r}")
            if active is not None:
                update = update * active.to(p.dtype).view(shape)
            p.sub_(update)
