"""``sal`` and ``ud``: Sharpness-Aware Learnability and Unlearnable Distance (Ye, Su and Qian, "How Far
Are We from True Unlearnability?", arXiv 2509.08058, ICLR 2025), as the authors' code computes them.

Both are properties of the *training data*, not of the model under evaluation (``reads_model = False``):
the metric trains its own surrogate, so the harness computes it once per training set and seed.

**SAL of a layer.** A layer is a weight tensor with at least two dimensions (convolution and linear
weights); biases and normalisation parameters are not layers, as in the authors' code, which probes the
``weight`` of every ``Conv2d``/``Linear`` module. From the surrogate's weights θ_t after epoch t, only
W_l is moved, by plain SGD (learning rate ``probe_lr`` = 0.1, no momentum, no weight decay) over
``passes`` full passes of the data (K: the paper's 10, dememo's default 2, see below), once
*descending* and once *ascending* the cross-entropy; after every step Δ = W_l − W_l(θ_t) is projected
onto ‖Δ‖₂ ≤ ``radius``·‖W_l(θ_t)‖₂ (radius 0.05).
With L_0 the loss at θ_t and L_k^↑, L_k^↓ the loss after pass k of ascent and descent,

    S_max = max(L_0, L_1^↑, …, L_K^↑) − L_0        (largest loss rise, ≥ 0)
    S_min = L_0 − min(L_0, L_1^↓, …, L_K^↓)        (largest loss drop, ≥ 0)
    SAL   = S_max if |S_max| > |S_min| else S_min.

The unperturbed weights count as a candidate in both maxima (the authors' code initialises the running
max and min with L_0), so S_max, S_min ≥ 0 and SAL = max(S_max, S_min) ≥ 0: the "signed" selection of
the code never produces a negative value. A layer with high SAL sits where a small move of that layer
alone changes the training loss a lot, which the paper reads as a parameter still being learned.

**#LP and UD.** The same surrogate recipe is run on the clean training split (same subsample positions,
same initialisation and batch order: a paired comparison). Threshold β = mean over epochs of the
midpoint of the two k-means (k = 2) centres of the clean per-layer SAL values of that epoch. #LP(D) =
mean over epochs of the number of layers with SAL > β on D, and UD = #LP(poisoned) / #LP(clean):
UD < 1 means fewer learnable layers than on clean data (the paper's unlearnable examples, e.g. EM UD =
0.139 on CIFAR-10), ≈ 1 no effect, > 1 more (error-maximising poisons such as TAP). The paper's text
speaks of parameters; the authors' code counts layers, and so does dememo.

dememo's choices (and why):

- *Cost and horizon.* The published protocol probes every layer after each of 50 epochs on all 50,000
  CIFAR-10 images (≈ 630 extra data passes per epoch for ResNet-18). dememo trains the surrogate on a
  seeded subsample of ``subsample`` training images for ``epochs`` epochs and probes at ``probes``
  evenly spaced epochs (ending with the last; #LP and β average over the probed epochs instead of all);
  ``ud_subsample`` and ``ud_epochs`` record the deviation in every ``ud`` result. What matters for the
  published direction is the horizon in SGD steps: error-minimising noise must be fitted (its SAL then
  collapses to ≈ 0) while the clean surrogate is still learning. Measured on noisy-shapes/small-cnn:
  with 15–20 epochs of 512 images at batch 128 (60–80 steps) EM is still being fitted at most probes
  and UD(EM) came out 1.0–3.2; with 240 steps (256 images, batch 64, 60 epochs) 0.09–0.57. Hence the
  defaults 256 images, 60 epochs, batch 64, 6 probes. Fewer probes make #LP too coarse (4 probes:
  UD(EM) 1.2 on one seed). On digits/mlp the clean surrogate memorises 256 images within the first probe
  interval, so only the first probe counts; ``subsample = 512, epochs = 12`` suits it (see below).
- *K = ``passes`` = 2* instead of 10: with a projection after every step and learning rate 0.1 the probe
  reaches the ball's boundary within the first pass; measured on noisy-shapes at three epochs, SAL after
  2 passes is within 1 % of SAL after 5 for every layer (1 pass: one layer 46 % low).
- *Surrogate recipe.* A fresh ``ctx.new_model()`` fitted with the suite recipe's learning rate, momentum
  and weight decay at a *constant* learning rate, with batch size ``batch_size`` (0 = the recipe's):
  the authors train at a constant rate (their step schedule first decays at epoch 100, after their 50
  epochs), and a one-cycle schedule squeezed into a short run would make "the weights after epoch t"
  depend on the truncation. Epoch-t weights are read inside one fit (optimiser state kept across
  epochs). Initialisation, batch order and subsample positions come from generators derived from the
  cell's seed only, so the clean and the released data get the same surrogate start: a paired
  comparison, and the clean profile is shared by every cell of a dataset and seed (it is memoised in
  the process, keyed by data fingerprint, seed, parameters, architecture, recipe and device).
- *L_0* is the loss of the epoch-t weights on the probed data (evaluation mode). The authors' code uses
  the running training loss averaged over that epoch's mini-batches, which is not the loss at θ_t and
  biases S_min upward (the weights improved during the epoch); dememo uses the exact value.
- *Projection after every step* (projected SGD), so Δ never leaves the ball; the authors' code rescales
  once per pass. Probe mini-batches (size ``batch_size``) come in a fixed order (the subsample is
  already randomly ordered); the last partial batch is kept. Probes run in evaluation mode.
- *Speed, exact:* for ``nn.Sequential`` models the children before the probed layer are evaluated once
  per probe epoch and only the rest of the network is run during the probe (the result is identical).
- *k-means* is solved exactly: in one dimension an optimal 2-means partition splits the sorted values
  into a prefix and a suffix, so every split is tried and the one with the least within-cluster sum of
  squares wins (the first on ties): deterministic, unlike Lloyd iterations (the authors use
  scikit-learn's KMeans). A single layer, or identical values, gives that value as the midpoint.
- *Guard.* If #LP(clean) = 0 (all clean SAL values equal at every probe, e.g. zero), UD is undefined and
  reported as NaN.
- *Data.* The cell's training data ``ev.train_data`` (poisoned on the unlearnability track); if the
  evaluation carries none, the clean training split is used (UD = 1 by construction).

Measured (quick-suite recipes and budgets, poisons crafted on the full training set with quick-suite
parameters; UD for seeds 0 / 1 / 2):

- noisy-shapes/small-cnn, defaults: EM 0.125 / 0.091 / 0.571; TAP (``tap``, 10 steps of ε/5) 0.375 /
  0.364 / 0.571; sample-wise random noise 1.25 / 0.73 / 1.0. 3–4.5 s per profile on one CPU core.
- digits/mlp, ``subsample = 512, epochs = 12``: EM 0.091 / 0.125 / 0.125; TAP 0.27 / 0.25 / 0.25; random
  noise 0.91 / 1.0 / 1.13. 0.5 s per profile. (With the defaults: EM and TAP 0, random noise 1.)

EM < 1 reproduces the paper (CIFAR-10: 0.139). TAP > 1 does not: on both embedded datasets the budget
is large against the class signal, and TAP's perturbations are fitted like a shortcut, so TAP lowers UD
too (less than EM on most seeds). UD here has a coarse resolution (4 or 3 layers × 6 probes): differences
of ±0.3 between seeds are noise.

Column directions (for the dememorizer, here the data owner): smaller SAL and fewer learnable layers
mean the released data teaches the surrogate less, so ``sal_mean``, ``lp_count`` and ``ud`` are
"lower is better". UD > 1 (TAP) therefore ranks worse than clean data: the paper's point is that such
poisons make the model learn *more* (wrong) features, not fewer, even when test accuracy drops.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import dememo
from dememo import validate


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The probed layers: every parameter with at least two dimensions (conv and linear weights)."""
    return [(name, p) for name, p in model.named_parameters() if p.dim() >= 2]


def project_to_ball(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """Δ rescaled onto ‖Δ‖₂ ≤ radius (unchanged inside the ball); stays on the device (no host sync)."""
    norm = torch.linalg.vector_norm(delta)
    return delta * (radius / norm.clamp_min(1e-30)).clamp(max=1.0)


@torch.no_grad()
def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> float:
    """Mean cross-entropy of ``model`` on (x, y), in large batches."""
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, len(x), batch_size):
        sl = slice(start, start + batch_size)
        total += F.cross_entropy(model(x[sl]), y[sl], reduction="sum").double()
    return float(total) / max(len(x), 1)


def probe_layer(model: nn.Module, param: nn.Parameter, x: torch.Tensor, y: torch.Tensor, *, passes: int,
                lr: float, radius: float, batch_size: int, reference: float | None = None,
                trace: Callable[[nn.Module], None] | None = None) -> tuple[float, float]:
    """(S_max, S_min) of one layer; ``model`` is left exactly as it was.

    Only ``param`` is moved (every other parameter is frozen for the duration), by projected SGD on the
    loss (descending) and on its negation (ascending), ``passes`` passes over (x, y) in fixed order with
    ``batch_size`` mini-batches; the ball has radius ``radius``·‖param‖₂. ``trace(model)`` is called after
    every projected step (for tests).
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    origin = param.detach().clone()
    ball = radius * float(torch.linalg.vector_norm(origin))
    model.eval()
    try:
        for p, _ in flags:
            p.requires_grad_(p is param)
        base = mean_loss(model, x, y) if reference is None else reference
        rise, drop = 0.0, 0.0
        for sign in (+1.0, -1.0):  # ascend, then descend
            best = base
            for _ in range(passes):
                for start in range(0, len(x), batch_size):
                    sl = slice(start, start + batch_size)
                    loss = F.cross_entropy(model(x[sl]), y[sl])
                    (grad,) = torch.autograd.grad(loss, param)
                    with torch.no_grad():
                        delta = param + sign * lr * grad - origin
                        param.copy_(origin + project_to_ball(delta, ball))
                    if trace is not None:
                        trace(model)
                value = mean_loss(model, x, y)
                best = max(best, value) if sign > 0 else min(best, value)
            if sign > 0:
                rise = best - base
            else:
                drop = base - best
            with torch.no_grad():
                param.copy_(origin)
    finally:
        with torch.no_grad():
            param.copy_(origin)
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    return rise, drop


def sal_value(s_max: float, s_min: float) -> float:
    """SAL from the two probes: whichever has the larger magnitude (S_max on ties), as in the authors' code."""
    return s_max if abs(s_max) >= abs(s_min) else s_min


def layer_sal(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, passes: int, lr: float, radius: float,
              batch_size: int) -> np.ndarray:
    """SAL of every layer of ``model`` on (x, y), in ``weight_layers`` order.

    Exact shortcut for ``nn.Sequential`` models (both first-party architectures): a probe moves one
    layer only, so the output of the children before it is fixed; it is computed once and the probe runs
    the remaining children only. Other models are run whole.
    """
    base = mean_loss(model, x, y)
    layers = weight_layers(model)
    owner: dict[int, int] = {}
    if isinstance(model, nn.Sequential):
        for i, child in enumerate(model):
            for p in child.parameters():
                owner[id(p)] = i
    prefix: dict[int, torch.Tensor] = {}
    if owner:
        needed = {owner[id(p)] for _, p in layers}
        was_training = model.training
        model.eval()
        with torch.no_grad():
            h = x
            for i, child in enumerate(model):
                if i in needed:
                    prefix[i] = h
                if i >= max(needed):
                    break
                h = child(h)
        model.train(was_training)
    out = []
    for _, p in layers:
        if id(p) in owner:
            i = owner[id(p)]
            part, inputs = model[i:], prefix[i]
        else:
            part, inputs = model, x
        s_max, s_min = probe_layer(part, p, inputs, y, passes=passes, lr=lr, radius=radius, batch_size=batch_size,
                                   reference=base)
        out.append(sal_value(s_max, s_min))
    return np.asarray(out, dtype=np.float64)


def kmeans2_midpoint(values: np.ndarray | list[float]) -> float:
    """Midpoint of the two centres of the exact 1-D 2-means clustering of ``values``.

    The optimal partition is a split of the sorted values into a prefix and a suffix; every split is
    tried and the least within-cluster sum of squares wins (the first on ties). One value (or all equal)
    gives that value.
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if v.size == 0:
        raise ValueError("k-means needs at least one value")
    if v.size == 1 or v[0] == v[-1]:
        return float(v[0])
    n = v.size
    c1, c2 = np.cumsum(v), np.cumsum(v * v)
    k = np.arange(1, n)  # size of the lower cluster
    lo_sum, lo_sq = c1[:-1], c2[:-1]
    hi_sum, hi_sq = c1[-1] - lo_sum, c2[-1] - lo_sq
    sse = (lo_sq - lo_sum**2 / k) + (hi_sq - hi_sum**2 / (n - k))
    best = int(np.argmin(sse))
    lo_mean, hi_mean = lo_sum[best] / k[best], hi_sum[best] / (n - k[best])
    return float((lo_mean + hi_mean) / 2)


def threshold(clean_profile: np.ndarray) -> float:
    """β: mean over epochs (rows) of the k-means midpoint of that epoch's clean per-layer SAL values."""
    return float(np.mean([kmeans2_midpoint(row) for row in clean_profile]))


def lp_count(profile: np.ndarray, beta: float) -> float:
    """#LP: mean over epochs (rows) of the number of layers with SAL > β."""
    return float(np.mean(np.sum(profile > beta, axis=1)))


#: profiles already computed in this process, keyed by everything they depend on (a few floats each)
_PROFILES: OrderedDict[str, np.ndarray] = OrderedDict()
_PROFILES_MAX = 64


@attrs.define
class _SALBase(dememo.Metric):
    """Shared hyper-parameters and the SAL profile computation of ``sal`` and ``ud``."""

    tracks: ClassVar[tuple[str, ...]] = ("unlearnability",)
    after_model_attack: ClassVar[bool] = False
    reads_model: ClassVar[bool] = False

    subsample: int = 256
    epochs: int = 60
    probes: int = 6
    passes: int = 2
    probe_lr: float = 0.1
    radius: float = 0.05
    batch_size: int = 64

    def __attrs_post_init__(self):
        validate.at_least(1, about="training images", subsample=self.subsample)
        validate.at_least(1, epochs=self.epochs, probes=self.probes, passes=self.passes)
        validate.positive(probe_lr=self.probe_lr)
        validate.non_negative(about="0 for the recipe's", batch_size=self.batch_size)
        validate.positive(about="a fraction of the layer's norm", radius=self.radius)

    # -- the profile -----------------------------------------------------------------------------

    def positions(self, n: int, ctx: dememo.Context) -> torch.Tensor:
        """The subsample: the first ``subsample`` of a permutation seeded by the cell's seed only, so the
        clean and poisoned sets (same length) use the same sample positions."""
        g = ctx.derive("sal-subsample").generator
        return torch.randperm(n, generator=g, device=g.device)[: min(self.subsample, n)]

    def profile(self, data: dememo.Data, ctx: dememo.Context) -> np.ndarray:
        """SAL of every layer (columns) after every surrogate epoch (rows) on ``data``; memoised."""
        arch = ctx.architecture
        key = repr((data.fingerprint, len(data), ctx.seed, self.params(), type(arch).name, arch.params(),
                    attrs.asdict(ctx.recipe), ctx.input_shape, ctx.num_classes, str(ctx.device)))
        if key in _PROFILES:
            _PROFILES.move_to_end(key)
            return _PROFILES[key]
        result = compute_profile(data, ctx, self.positions(len(data), ctx), epochs=self.epochs,
                                 probes=self.probes, passes=self.passes, lr=self.probe_lr, radius=self.radius,
                                 batch_size=self.batch_size or ctx.recipe.batch_size)
        _PROFILES[key] = result
        while len(_PROFILES) > _PROFILES_MAX:
            _PROFILES.popitem(last=False)
        return result

    def profiles(self, ev: dememo.Evaluation, ctx: dememo.Context) -> tuple[np.ndarray, np.ndarray]:
        """(profile on the cell's training data, profile on the clean training split)."""
        data = ev.train_data if ev.train_data is not None else ev.splits.train
        clean = self.profile(ev.splits.train.to(ctx.device), ctx)
        return self.profile(data.to(ctx.device), ctx), clean


def probe_epochs(epochs: int, probes: int) -> list[int]:
    """``probes`` epochs evenly spread over 1..``epochs``, ending with the last (all epochs if probes ≥ epochs)."""
    probes = min(probes, epochs)
    return sorted({max(1, round(epochs * (i + 1) / probes)) for i in range(probes)})


def compute_profile(data: dememo.Data, ctx: dememo.Context, positions: torch.Tensor, *, epochs: int, probes: int,
                    passes: int, lr: float, radius: float, batch_size: int) -> np.ndarray:
    """Train a fresh surrogate on ``data[positions]`` for ``epochs`` epochs (recipe, constant learning rate)
    and return its per-layer SAL after every epoch (epochs × layers). The surrogate's initialisation and
    batch order come from a generator derived from the cell's seed only (identical for clean and poisoned
    data of the same size)."""
    sub = data.subset(positions, "sal-subsample")
    local = ctx.derive("sal-surrogate")
    model = local.new_model()
    when = set(probe_epochs(epochs, probes))
    rows: list[np.ndarray] = []

    def probe(m: nn.Module, epoch: int) -> None:
        if epoch in when:
            rows.append(layer_sal(m, sub.x, sub.y, passes=passes, lr=lr, radius=radius, batch_size=batch_size))

    local.fit(model, sub, epochs=epochs, batch_size=batch_size, schedule="constant", after_epoch=probe,
              desc="sal surrogate")
    return np.stack(rows)


@attrs.define
class SAL(_SALBase):
    """Sharpness-Aware Learnability (Ye et al. 2025): per-layer loss sharpness of a surrogate on the data."""

    name: ClassVar[str] = "sal"
    version: ClassVar[str] = "1"
    columns: ClassVar[dict[str, dememo.Column]] = {
        "sal_mean": dememo.Column(
            "SAL", "lower", "mean over layers and surrogate epochs of the sharpness-aware learnability (largest "
            "training-loss change when one layer moves within 5 % of its norm) on the released data",
            unit="number"),
        "lp_count": dememo.Column(
            "#LP", "lower", "learnable layers: mean over epochs of the number of layers whose SAL exceeds the "
            "clean-data threshold β (k-means midpoint)", unit="number"),
        "sal_threshold": dememo.Column(
            "β", "info", "threshold β from the clean data's SAL profile", unit="number"),
    }

    def compute(self, ev, ctx):
        poisoned, clean = self.profiles(ev, ctx)
        beta = threshold(clean)
        return {"sal_mean": float(poisoned.mean()), "lp_count": lp_count(poisoned, beta), "sal_threshold": beta}


@attrs.define
class UD(_SALBase):
    """Unlearnable Distance (Ye et al. 2025): learnable layers on the data over those on clean data."""

    name: ClassVar[str] = "ud"
    version: ClassVar[str] = "1"
    columns: ClassVar[dict[str, dememo.Column]] = {
        "ud": dememo.Column(
            "UD", "lower", "#LP(released data) / #LP(clean data): < 1 unlearnable, ≈ 1 no effect, > 1 the "
            "surrogate learns more layers (error-maximising poisons); NaN if #LP(clean) = 0", unit="number"),
        "ud_epochs": dememo.Column("UD epochs", "info", "surrogate epochs used (paper: 50)", unit="epochs"),
        "ud_subsample": dememo.Column(
            "UD images", "info", "training images the surrogate saw (paper: the whole training set)", unit="count"),
    }

    def compute(self, ev, ctx):
        poisoned, clean = self.profiles(ev, ctx)
        beta = threshold(clean)
        lp_clean = lp_count(clean, beta)
        ud = lp_count(poisoned, beta) / lp_clean if lp_clean > 0 else float("nan")
        n = len(ev.train_data if ev.train_data is not None else ev.splits.train)
        return {"ud": ud, "ud_epochs": float(self.epochs), "ud_subsample": float(min(self.subsample, n))}


@dememo.hookimpl
def register_metrics(register: Any) -> None:
    register(SAL)
    register(UD)
