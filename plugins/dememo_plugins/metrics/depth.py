"""``depth``: how far the weights must move before hidden or forgotten accuracy comes back.

The SoK on model dememorization (arXiv 2605.11592) calls dememorization *shallow* when a small weight
perturbation brings back what was hidden: clean accuracy of a model trained on unlearnable examples (PUE's
bounded weight recovery, Wang et al., NDSS 2025), or forget-set accuracy of an unlearned model. This
metric turns that into one number per model and track, measured the same way on both tracks
(``_hidden``): with hidden accuracy A, level L (the model that was never dememorized) and floor F (a model
that never saw the data), the target is

    T = F + fraction·(L − F)                     (fraction = 0.9 by default)

- **Recovery depth** η*: the smallest ℓ2 radius on the grid ``etas`` at which bounded weight recovery
  brings A back to T,  η* = min{η : max_{‖θ − θ̂‖₂ ≤ η} A(θ) ≥ T}, the inner max searched by PUE's projected
  SGD on a small clean recovery set (``dememo_plugins.attacks.weight_recovery``, the same code as the
  ``weight-recovery`` attack; ``recovery_fraction`` of the validation split, never the hidden data).
- **Noise depth** σ*: the smallest Gaussian weight-noise scale on the grid ``sigmas`` at which one random
  perturbation in ten brings A back to T: the ``q``-quantile (q = 0.9) of A(θ̂ + σ·N(0, I)) over ``draws``
  draws reaches T.

η = 0 (σ = 0) is the unperturbed model: if it already reaches T the depth is 0 (nothing is hidden). A model
whose accuracy is not back by the largest grid value reads ``> cap``: the grids must end at the columns'
caps (η 4, σ 0.1), so the censored value is stated exactly. The full curves A(η) and the q-quantile A(σ)
are kept as series (``depth_eta_curve``, ``depth_sigma_curve``) for the report's recovery-vs-η figures.

Choices where the sources leave room:

- The recovery set is the clean validation split (as for the ``weight-recovery`` attack), also on the
  unlearning track: the attacker holds fresh data of the task, not the forget set (that would be
  relearning, a different attack). On a class forget set the validation split holds the forgotten class, so
  this measures how little movement relearns it from a few held-out images; on a random forget set the
  floor is already most of the level, and bringing the forget set's *memorized* part back from other images
  is rarely possible within the grid, so suites run it on class forget sets.
- The grid value is reported, not an interpolation: a conservative "back by this radius".
- The same recovery set (``ctx.derive("depth:recovery")``) serves every η, so the curve compares radii, not
  draws. The recovery at each η starts from θ̂ (never from a smaller radius's result).
- Once the target is reached at some η the larger radii are not searched (each search is an SGD run, and
  the depth is known): the curve carries the recovered value forward. That is a measured point, not a
  guess: the model found within radius η lies within every larger ball, so an attacker with a larger
  budget can return it. The same holds for σ, whose draws are cheap, so σ is always measured in full.
- Only the model as trained or unlearned is measured (``after_model_attack = False``): the metric is itself
  an attack sweep.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs

import dememo
from dememo_plugins.attacks.weight_recovery import WeightRecovery
from dememo_plugins.metrics._hidden import NEEDS, hidden
from dememo_plugins.metrics.certified_learnability import empirical_quantile, noisy_accuracies

#: the columns' caps: a model not recovered within the grid reads "> cap" (the grids end here)
ETA_CAP = 4.0
SIGMA_CAP = 0.1


def first_reaching(curve: list[tuple[float, float]], target: float, cap: float) -> float:
    """The smallest x of ``curve`` [(x, y), ...] (increasing x) with y ≥ target; ``cap + 1`` (censored:
    "more than cap") when none does. NaN values never count as reaching."""
    for x, y in curve:
        if not math.isnan(y) and y >= target - 1e-12:
            return x
    return cap + 1.0


def _grid(name: str, values: tuple[float, ...], cap: float) -> None:
    if not values or any(not 0 < v <= cap for v in values) or list(values) != sorted(set(values)):
        raise ValueError(f"depth: {name} must be increasing values in (0, {cap:g}], got {list(values)}")
    if values[-1] != cap:
        raise ValueError(f"depth: {name} must end at {cap:g} (the column's cap: a model not recovered by then reads "
                         f"'> {cap:g}'), got {list(values)}")


@attrs.define
class Depth(dememo.Metric):
    """Depth of dememorization: smallest weight-space radius η (recovery) and noise σ bringing hidden accuracy back."""

    name: ClassVar[str] = "depth"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability", "unlearning")
    needs: ClassVar[dict[str, tuple[str, ...]]] = NEEDS
    after_model_attack: ClassVar[bool] = False
    columns: ClassVar[dict[str, dememo.Column]] = {
        "depth_eta": dememo.Column("depth η", "higher",
                                   "smallest ℓ2 radius η (grid) at which bounded weight recovery (projected SGD on clean "
                                   "validation images) brings the hidden accuracy back to floor + fraction·(level − floor); "
                                   "0 = nothing hidden", unit="number", cap=ETA_CAP),
        "depth_sigma": dememo.Column("depth σ", "higher",
                                     "smallest Gaussian weight-noise σ (grid) at which the q-quantile of the hidden accuracy "
                                     "over draws reaches the same target", unit="number", cap=SIGMA_CAP),
        "depth_target": dememo.Column("depth target", "info", "the target accuracy T = floor + fraction·(level − floor)",
                                      detail=True),
        "hidden_acc": dememo.Column("hidden acc", "info", "the hidden accuracy of the model itself (η = 0): clean test "
                                    "accuracy (unlearnability) or forget accuracy (unlearning)", detail=True),
        "depth_eta_curve": dememo.Column("recovered acc vs η", "info", "hidden accuracy after bounded weight recovery at "
                                         "each η (η = 0: the model)", unit="series"),
        "depth_sigma_curve": dememo.Column("q-quantile acc vs σ", "info", "q-quantile over draws of the hidden accuracy "
                                           "under Gaussian weight noise at each σ", unit="series"),
    }
    fraction: float = 0.9
    etas: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    sigmas: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1)
    draws: int = 16
    q: float = 0.9
    recovery_fraction: float = 0.2
    lr: float = 0.01
    epochs: int = 60

    def __attrs_post_init__(self):
        self.etas, self.sigmas = tuple(float(v) for v in self.etas), tuple(float(v) for v in self.sigmas)
        if not 0 < self.fraction <= 1:
            raise ValueError(f"depth: fraction of the way from floor to level must be in (0, 1], got {self.fraction}")
        _grid("etas", self.etas, ETA_CAP)
        _grid("sigmas", self.sigmas, SIGMA_CAP)
        if self.draws < 1 or not 0 < self.q < 1:
            raise ValueError(f"depth: needs draws ≥ 1 and q in (0, 1), got draws={self.draws}, q={self.q}")
        # the recovery parameters are checked by the attack they configure
        WeightRecovery(fraction=self.recovery_fraction, lr=self.lr, epochs=self.epochs)

    def recovery_curve(self, ev, data: dememo.Data, ctx, target: float = math.inf) -> list[tuple[float, float]]:
        """[(η, accuracy on ``data`` of the recovered model)], η = 0 first (the model itself); once the
        accuracy reaches ``target`` the larger radii carry that value (see the module docstring)."""
        curve = [(0.0, ev.accuracy(ev.model, data))]
        attack_data = dememo.AttackData(ev.splits, ev.task)
        for eta in self.etas:
            if curve[-1][1] >= target - 1e-12:
                curve.append((eta, curve[-1][1]))
                continue
            attack = WeightRecovery(eta=eta, fraction=self.recovery_fraction, lr=self.lr, epochs=self.epochs)
            recovered = attack.attack(ev.model, attack_data, ctx.derive("depth:recovery"))
            curve.append((eta, ctx.accuracy(recovered, data)))
        return curve

    def noise_curve(self, ev, data: dememo.Data, ctx) -> list[tuple[float, float]]:
        """[(σ, q-quantile over draws of the accuracy on ``data``)], σ = 0 first (the model itself)."""
        curve = [(0.0, ev.accuracy(ev.model, data))]
        for sigma in self.sigmas:
            accs = noisy_accuracies(ev.model, data, sigma, self.draws, ctx.derive(f"depth:noise:{sigma}").generator)
            curve.append((sigma, empirical_quantile(accs, self.q)))
        return curve

    def compute(self, ev, ctx):
        h = hidden(ev)
        target = h.target(self.fraction)
        eta_curve = self.recovery_curve(ev, h.data, ctx, target)
        sigma_curve = self.noise_curve(ev, h.data, ctx)
        return {
            "depth_eta": first_reaching(eta_curve, target, ETA_CAP),
            "depth_sigma": first_reaching(sigma_curve, target, SIGMA_CAP),
            "depth_target": target,
            "hidden_acc": eta_curve[0][1],
            "depth_eta_curve": dememo.Series([x for x, _ in eta_curve], [y for _, y in eta_curve], "eta"),
            "depth_sigma_curve": dememo.Series([x for x, _ in sigma_curve], [y for _, y in sigma_curve], "sigma"),
        }


@dememo.hookimpl
def register_metrics(register):
    register(Depth)
