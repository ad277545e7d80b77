"""Gradient statistics shared by the Fisher family of unlearners (``ssd``, ``fisher``, ``influence``).

Everything here is computed in **evaluation mode** (BatchNorm uses its running statistics, dropout is
off), so a sample's gradient depends on that sample only and the statistics are a pure function of the
weights and the data (no batch composition, no ordering). Per-sample gradients are exact: one
``torch.func.vmap`` over ``torch.func.grad`` (or ``jacrev`` for the per-class gradients of the true
Fisher) of a ``functional_call`` of the model, in chunks sized so that a chunk of gradients stays under
``BUDGET`` floats (by device type). Only parameters with ``requires_grad`` take part; the others are
passed as constants.

- ``empirical_fisher_diagonal``: (1/N) Σ_i (∂ log p(y_i | x_i) / ∂θ)², the labels' log-likelihood
  (= the squared per-sample cross-entropy gradient).
- ``true_fisher_diagonal``: (1/N) Σ_i Σ_c p(c | x_i) (∂ log p(c | x_i) / ∂θ)², the expectation over the
  model's own predictive distribution (the Fisher Information Matrix proper).
- ``sampled_fisher_diagonal``: the same with one label per sample drawn from p(· | x_i) (an unbiased
  Monte Carlo estimate at the cost of the empirical one, instead of one gradient per class).
- ``mean_gradient``: (1/N) Σ_i ∂ CE(x_i, y_i) / ∂θ as one flat vector.
- ``batch_mean_importance``: SSD's released estimator, (1/B) Σ_b (∂ CE_b / ∂θ)² with CE_b the *mean*
  cross-entropy of consecutive, unshuffled batches b = 1..B (not a Fisher: it depends on the batch size
  and on which samples share a batch; with batches of one sample it is ``empirical_fisher_diagonal``).
- ``damped_fisher_solve``: F⁻¹v for F = λI + (1/m) Σ_j g_j g_jᵀ (a damped empirical Fisher of m
  per-sample gradients), exactly, through the Woodbury identity
  F⁻¹v = (v − Gᵀ(mλI + GGᵀ)⁻¹Gv)/λ with G the m×P matrix of gradients: an m×m solve instead of P×P.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import attrs
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from dememo.data import Data
from dememo.models import evaluating
from dememo.training import predict

# floats per chunk of per-sample gradients: small chunks stay in cache on a CPU (measured on 2 cores:
# 4M floats, 64 digits-MLP gradients per chunk, 3× faster than 32M); large ones fill an accelerator
BUDGET = {"cpu": 2**22}
DEFAULT_BUDGET = 2**27
CACHE_BYTES = 2**30  # per-sample gradients kept in memory by damped_fisher_solve before it recomputes


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters the statistics are taken over, in ``named_parameters`` order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def num_trainable(model: nn.Module) -> int:
    return sum(p.numel() for _, p in trainable(model))


def split_flat(model: nn.Module, vec: torch.Tensor) -> list[torch.Tensor]:
    """A flat vector over ``trainable(model)`` cut into tensors shaped like the parameters."""
    out, start = [], 0
    for _, p in trainable(model):
        out.append(vec[start : start + p.numel()].view(p.shape))
        start += p.numel()
    return out


@torch.no_grad()
def add_flat_(model: nn.Module, vec: torch.Tensor) -> None:
    """θ ← θ + vec for the trainable parameters (``vec`` flat, in ``trainable`` order)."""
    for (_, p), d in zip(trainable(model), split_flat(model, vec), strict=True):
        p.add_(d.to(p.dtype))


def _functional(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Callable]:
    """Trainable parameters (detached), constants (frozen parameters and buffers), and
    ``logits(params, x1)`` for one unbatched sample ``x1``."""
    names = {n for n, _ in trainable(model)}
    params = {n: p.detach() for n, p in model.named_parameters() if n in names}
    consts = {n: p.detach() for n, p in model.named_parameters() if n not in names}
    consts.update(dict(model.named_buffers()))

    def logits(ps: dict[str, torch.Tensor], x1: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**consts, **ps}, (x1.unsqueeze(0),)).squeeze(0)

    return params, consts, logits


def _flatten_rows(grads: dict[str, torch.Tensor], params: dict[str, torch.Tensor], lead: int) -> torch.Tensor:
    """Batched per-parameter gradients (leading dims ``lead``) as rows over the flat parameter vector."""
    return torch.cat([grads[n].reshape(*grads[n].shape[:lead], -1) for n in params], dim=-1)


def chunk_size(model: nn.Module, per_sample: int = 1) -> int:
    """Samples per chunk so that a chunk's gradients (``per_sample`` vectors each) fit in the budget."""
    device = next(model.parameters()).device.type
    return max(1, BUDGET.get(device, DEFAULT_BUDGET) // max(1, per_sample * num_trainable(model)))


def _gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample cross-entropy gradients (= −∂ log p(y|x)/∂θ) of one chunk, by parameter name, eval mode."""
    params, _, logits = _functional(model)

    def loss(ps, x1, y1):
        return F.cross_entropy(logits(ps, x1).unsqueeze(0), y1.unsqueeze(0))

    with evaluating(model):
        return vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)


def per_sample_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """len(x) × P matrix of per-sample cross-entropy gradients (= −∂ log p(y|x)/∂θ), eval mode, one chunk."""
    g = _gradients(model, x, y)
    return _flatten_rows(g, g, 1)


def _chunks(data: Data, size: int, ctx, desc: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    starts = range(0, len(data), size)
    it = ctx.progress(starts, desc, len(starts)) if ctx is not None else starts
    for s in it:
        yield data.x[s : s + size], data.y[s : s + size]


def empirical_fisher_diagonal(model: nn.Module, data: Data, ctx=None, desc: str = "fisher") -> torch.Tensor:
    """Flat diagonal of the empirical Fisher over ``data``: mean of squared per-sample gradients."""
    total = {n: torch.zeros_like(p) for n, p in trainable(model)}
    for x, y in _chunks(data, chunk_size(model), ctx, desc):
        for n, g in _gradients(model, x, y).items():
            total[n] += g.square().sum(0)
    return torch.cat([t.reshape(-1) for t in total.values()]) / max(len(data), 1)


def true_fisher_diagonal(model: nn.Module, data: Data, ctx=None, desc: str = "fisher") -> torch.Tensor:
    """Flat diagonal of the Fisher Information Matrix over ``data``:
    (1/N) Σ_i Σ_c p(c|x_i) (∂ log p(c|x_i)/∂θ)², every class's gradient exact (``jacrev``)."""
    params, _, logits = _functional(model)

    def log_probs(ps, x1):
        return torch.log_softmax(logits(ps, x1), dim=-1)

    total = torch.zeros(num_trainable(model), device=data.device)
    with evaluating(model):
        for x, _ in _chunks(data, chunk_size(model, data.num_classes), ctx, desc):
            jac = vmap(jacrev(log_probs), in_dims=(None, 0))(params, x)  # name -> B×C×shape
            rows = _flatten_rows(jac, params, 2)  # B×C×P
            with torch.no_grad():
                probs = torch.softmax(model(x), dim=-1)
            total += torch.einsum("bc,bcp->p", probs, rows.square())
    return total / max(len(data), 1)


def sampled_fisher_diagonal(model: nn.Module, data: Data, generator: torch.Generator, ctx=None,
                            desc: str = "fisher") -> torch.Tensor:
    """Monte Carlo estimate of ``true_fisher_diagonal``: one label per sample drawn from the model's own
    p(·|x_i) with ``generator``, then the empirical diagonal with those labels. Unbiased, at the cost of
    one gradient per sample instead of one per class."""
    if len(data) == 0:
        return torch.zeros(num_trainable(model), device=data.device)
    probs = torch.softmax(predict(model, data.x), dim=-1)
    drawn = torch.multinomial(probs.to(generator.device), 1, generator=generator).squeeze(1).to(data.device)
    return empirical_fisher_diagonal(model, attrs.evolve(data, y=drawn), ctx, desc)


def mean_gradient(model: nn.Module, data: Data, batch_size: int = 512) -> torch.Tensor:
    """Flat (1/N) Σ_i ∂ CE(x_i, y_i)/∂θ over ``data`` (zeros for empty data), eval mode."""
    params = [p for _, p in trainable(model)]
    total = torch.zeros(num_trainable(model), device=next(model.parameters()).device)
    if len(data) == 0:
        return total
    with evaluating(model):
        for s in range(0, len(data), batch_size):
            loss = F.cross_entropy(model(data.x[s : s + batch_size]), data.y[s : s + batch_size], reduction="sum")
            total += torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
    return total / len(data)


def batch_mean_importance(model: nn.Module, parts: Sequence[Data], batch_size: int, ctx=None,
                          desc: str = "importance") -> torch.Tensor:
    """Flat (1/B) Σ_b (∂ CE_b/∂θ)², eval mode: ``parts`` concatenated in order and cut into B consecutive
    batches of ``batch_size`` (the last one possibly shorter), CE_b the mean cross-entropy of batch b."""
    x = torch.cat([d.x for d in parts])
    y = torch.cat([d.y for d in parts])
    params = [p for _, p in trainable(model)]
    total = torch.zeros(num_trainable(model), device=next(model.parameters()).device)
    starts = range(0, len(y), batch_size)
    if len(starts) == 0:
        return total
    it = ctx.progress(starts, desc, len(starts)) if ctx is not None else starts
    with evaluating(model):
        for s in it:
            loss = F.cross_entropy(model(x[s : s + batch_size]), y[s : s + batch_size])
            grads = torch.autograd.grad(loss, params, allow_unused=True)  # unused: no gradient, importance 0
            total += torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                for p, g in zip(params, grads, strict=True)]).square()
    return total / len(starts)


def damped_fisher_solve(model: nn.Module, data: Data, v: torch.Tensor, damping: float, ctx=None,
                        desc: str = "woodfisher") -> torch.Tensor:
    """F⁻¹v for the damped empirical Fisher F = λI + (1/m) Σ_j g_j g_jᵀ of the m samples in ``data``.

    Exact (the Woodbury identity; the m×m system is solved in float64 by Cholesky). The per-sample
    gradients are kept in memory when they fit in ``CACHE_BYTES``; otherwise the Gram matrix is built
    out of core, one block of rows that fits at a time, recomputing the others (more passes, same result).
    """
    m, p = len(data), v.numel()
    if m == 0:
        return v / damping
    step = chunk_size(model)
    block = max(step, min(m, CACHE_BYTES // (4 * p)))

    def rows(start: int, stop: int) -> torch.Tensor:
        return torch.cat([per_sample_gradients(model, data.x[s : min(s + step, stop)], data.y[s : min(s + step, stop)])
                          for s in range(start, stop, step)])

    cached = rows(0, m) if block >= m else None

    def get(start: int, stop: int) -> torch.Tensor:
        return cached[start:stop] if cached is not None else rows(start, stop)

    starts = list(range(0, m, block))
    gram = torch.empty(m, m, dtype=torch.float64, device=v.device)
    proj = torch.empty(m, dtype=torch.float64, device=v.device)
    it = ctx.progress(starts, desc, len(starts)) if ctx is not None else starts
    for i in it:
        a = get(i, min(i + block, m))
        proj[i : i + len(a)] = (a @ v).double()
        gram[i : i + len(a), i : i + len(a)] = (a @ a.T).double()
        for j in range(i + block, m, block):
            b = get(j, min(j + block, m))
            gram[i : i + len(a), j : j + len(b)] = (a @ b.T).double()
            gram[j : j + len(b), i : i + len(a)] = gram[i : i + len(a), j : j + len(b)].T
    system = gram + m * damping * torch.eye(m, dtype=torch.float64, device=v.device)
    coef = torch.cholesky_solve(proj.unsqueeze(1), torch.linalg.cholesky(system)).squeeze(1).to(v.dtype)
    back = torch.zeros_like(v)
    for i in starts:
        a = get(i, min(i + block, m))
        back += coef[i : i + len(a)] @ a
    return (v - back) / damping
