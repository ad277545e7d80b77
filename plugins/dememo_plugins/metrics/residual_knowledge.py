"""``residual-knowledge``: residual knowledge r_τ on perturbed forget samples (Hsu, Niroula, He, Brugere, Lecue
and Chen, "The Unseen Threat: Residual Knowledge in Machine Unlearning under Perturbed Samples", NeurIPS 2025,
arXiv 2601.22359).

An unlearned model m can agree with the retrained model a on every forget sample and still recognise
slightly perturbed copies of them that a does not. For a forget sample (x, y) and a radius τ,

    r_τ(x) = Pr_{x'}[m(x') = y] / Pr_{x'}[a(x') = y],        x' drawn around x at radius τ,

estimated from c draws of x' per sample, the *same* x' scored by both models (the ratio of two hit
counts over the same draws). r_τ(S_f) is the mean of r_τ(x) over the forget set. r = 1 means m knows
the perturbed forget samples exactly as much as retraining does (the paired retrain reads exactly 1
wherever defined: m = a gives identical counts); r > 1 is residual knowledge; r < 1 is over-unlearning
(m rejects neighbours of x that a still recognises). At τ = 0 every draw is x itself, so r_0(x) ∈ {0, 1}:
r_0 < 1 as soon as m misclassifies a forget sample that a classifies correctly.

Generators (all run against the evaluated model m; x' is clamped to [0, 1]):

- ``gauss``: x' = clip(x + τ·ξ, 0, 1), ξ ~ N(0, I) (Gaussian noise of standard deviation τ);
- ``fgsm``: targeted FGSM at ε = τ: one signed-gradient step of size τ that *decreases* CE(m(x'), y),
  from a uniform random start in the L∞ τ-ball, projected onto the ball and [0, 1];
- ``pgd``: targeted L∞ PGD at ε = τ, ``pgd_steps`` steps of size ``pgd_step_fraction``·τ toward y from a
  uniform random start (``dememo.pgd``).

The authors' code was not found released (searched for the RURK repository): dememo follows the paper's
definition; tests/plugins/metrics/test_residual_knowledge.py checks the estimator against the closed-form
probabilities of threshold models for each generator.

Choices where the paper leaves room, and deviations (dememo):

- Target of the "targeted" attacks: the sample's own label y. Residual knowledge asks whether m still
  *recognises* a neighbour of x as y while a does not, so the adversary searches the τ-ball for points m
  classifies as y (descent on CE(m(x'), y)); a wrong-class target would measure robustness instead.
- Targeted attacks toward y transfer: once τ exceeds the data's class signal both models classify every
  x' as y and r = 1 (measured on noisy-shapes, class contrast 0.025 per pixel: r = 1.00 ± 0.03 for every
  unlearner that keeps its accuracy from τ ≈ 2/255 on). The FGSM / PGD values at τ = 0.03 then say little;
  their curves at small τ, and the Gaussian generator, carry the signal there.
- The c draws of the attacks differ by their uniform random start (FGSM with a random start, as in Wong
  et al. 2020); without it FGSM would give one deterministic x' and Pr ∈ {0, 1}.
- A sample whose denominator is 0 (a never classifies any of its c draws as y) has an undefined ratio
  (0/0, or residual knowledge without a finite ratio when m does): it is left out of the mean and of the
  share r > 1, and counted in ``…_undefined``. The share of r > 1 is over the samples with a defined ratio.
- c, the number of draws per sample, is per generator (``gauss_draws``, ``fgsm_draws``, ``pgd_draws``): 16 /
  4 / 2 by default, with 3 PGD steps, instead of the paper's c = 100 for Gaussian noise. Every radius costs
  c forward passes of both models per forget image (plus 1 resp. 3 forward-backward passes of m for FGSM
  and PGD), for 11 grid radii plus the leaderboard radius: measured about 4 s per cell on noisy-shapes
  (150 forget images, small-cnn) and 0.2 s on digits on 2 CPU cores; 32 / 8 / 4 draws with 5 PGD steps
  took 10-12 s, and c = 100 would take about 30 s for the Gaussian generator alone. Small c coarsens the
  per-sample ratio (multiples of 1/c) and turns samples whose retrained hit rate is below 1/c into
  undefined ones. Draws are batched: all c draws of a chunk of samples go through one forward pass.
- The mean of per-sample ratios (the paper's r_τ(S_f)) is heavy-tailed: a sample with 16 of 16 draws
  recognised by m and 1 by a adds 0.1 to the mean over 150 samples, so the value moves by a few tenths
  between seeds, thread counts (float rounding flips near-boundary draws) and values of c. Read it with
  ``…_share_gt1`` (how many samples carry residual knowledge) and the curves.
- Randomness: each generator draws from ``ctx.derive("residual-knowledge:<generator>")``, re-derived at
  every τ, so all radii (and every model of a seed) share the same noise ξ and random starts (common random
  numbers: a smooth curve over τ, and differences between unlearners that are not sampling noise). The
  leaderboard radius ``tau`` (0.03) is evaluated on its own and need not lie on the grid ``taus``
  (default linspace(0, 8/255, 11); the curves are stored as series over it).
- Both models are evaluated in eval mode (their modes are restored afterwards).
- Not run on class-level forget sets (``forget_kinds``): the retrained model never predicts the forgotten
  class, so every ratio is undefined there (measured: all 101 / 150 forget samples of digits / noisy-shapes
  class 0 undefined at every radius, for every generator, including PGD at τ = 8/255).
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch

import dememo
from dememo.models import evaluating
from dememo.pgd import cross_entropy_loss, pgd

GENERATORS: tuple[str, ...] = ("gauss", "fgsm", "pgd")
_NAMES = {"gauss": "Gaussian noise (std τ)", "fgsm": "targeted FGSM toward the true label (ε = τ, random start)",
          "pgd": "targeted L∞ PGD toward the true label (ε = τ, random start)"}
_SHORT = {"gauss": "Gauss", "fgsm": "FGSM", "pgd": "PGD"}
GRID: tuple[float, ...] = tuple(float(v) for v in torch.linspace(0, 8 / 255, 11, dtype=torch.float64))


#: the report's residual-knowledge figure: one panel per generator
_PANELS = {"gauss": "Gaussian noise", "fgsm": "targeted FGSM", "pgd": "targeted PGD"}
_CAPTION = ("Residual knowledge r_τ: the unlearned model's hit rate on perturbed copies of forget samples (radius τ; one "
            "plot per perturbation generator) divided by the paired retrained model's. The dash-dotted line r = 1 is "
            "retrain (its own curve is 1 wherever defined); closest to 1 is better: r > 1 means the model still "
            "recognises neighbours of forgotten samples (residual knowledge), r < 1 over-unlearning.")

def _columns() -> dict[str, dememo.Column]:
    cols: dict[str, dememo.Column] = {}
    for g in GENERATORS:
        what = f"{_NAMES[g]}, generated against the evaluated model; same x' scored by the paired retrained model"
        cols[f"rk_{g}"] = dememo.Column(
            f"RK {_SHORT[g]}", "match",
            f"residual knowledge r_τ at τ = `tau` (0.03): mean over forget samples of Pr[m(x') = y] / Pr[a(x') = y], "
            f"m the evaluated model, a the paired retrain; x' by {what}. 1 = as retrain (> 1 residual knowledge, "
            f"< 1 over-unlearning)", unit="number", reference="retrain")
        cols[f"rk_{g}_share_gt1"] = dememo.Column(
            f"RK {_SHORT[g]} >1", "lower",
            f"share of forget samples (with a defined ratio) whose r_τ > 1 at τ = `tau`; x' by {what}; retrain reads 0",
            detail=True)
        cols[f"rk_{g}_undefined"] = dememo.Column(
            f"RK {_SHORT[g]} undef", "info",
            f"number of forget samples whose ratio is undefined at τ = `tau` (the paired retrain classifies none of "
            f"their draws as y); x' by {what}", unit="count", detail=True)
        cols[f"rk_{g}_curve"] = dememo.Column(
            f"RK {_SHORT[g]} curve", "match",
            f"mean r_τ over forget samples at each τ of the grid `taus`; x' by {what}",
            unit="series", reference="retrain", plots=(dememo.Plot(
                "residual-knowledge", title="residual knowledge", caption=_CAPTION, panel=_PANELS[g],
                x="τ (input perturbation radius)", y="residual knowledge r_τ", percent=False, line=1.0,
                line_label="retrain (r = 1)", order=40),))
        cols[f"rk_{g}_share_gt1_curve"] = dememo.Column(
            f"RK {_SHORT[g]} >1 curve", "lower",
            f"share of forget samples with r_τ > 1 at each τ of the grid `taus`; x' by {what}", unit="series")
        cols[f"rk_{g}_undefined_curve"] = dememo.Column(
            f"RK {_SHORT[g]} undef curve", "info",
            f"number of undefined ratios at each τ of the grid `taus`; x' by {what}", unit="series")
    return cols


def _to_floats(value) -> tuple[float, ...]:
    return tuple(float(v) for v in value)


@attrs.define
class ResidualKnowledge(dememo.Metric):
    """Residual knowledge r_τ (RURK): unlearned vs retrained accuracy on perturbed forget samples."""

    name: ClassVar[str] = "residual-knowledge"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    needs: ClassVar[tuple[str, ...]] = ("retrained",)
    forget_kinds: ClassVar[tuple[str, ...]] = ("random", "memorization")
    after_model_attack: ClassVar[bool] = False
    columns: ClassVar[dict[str, dememo.Column]] = _columns()

    #: the radius shown on the leaderboard
    tau: float = 0.03
    #: the radii of the stored curves
    taus: tuple[float, ...] = attrs.field(default=GRID, converter=_to_floats)
    gauss_draws: int = 16
    fgsm_draws: int = 4
    pgd_draws: int = 2
    pgd_steps: int = 3
    #: PGD step size as a fraction of τ (3 steps of τ/2 reach 1.5·τ from the random start)
    pgd_step_fraction: float = 0.5
    #: at most this many perturbed images per forward pass (fewer where ``dememo.training.eval_batch_size``
    #: says so: cache-sized batches on a CPU). On a CPU with the default draw counts the values do not depend
    #: on the chunking (the Gaussian draws come out the same for chunks of multiples of 16 values); in
    #: general they may, as each chunk draws its own noise
    batch_size: int = 1024

    def __attrs_post_init__(self):
        if not 0 <= self.tau <= 1:
            raise ValueError(f"tau (the leaderboard radius, [0, 1] pixel space) must be in [0, 1], got {self.tau}")
        if not self.taus:
            raise ValueError("taus (the radius grid of the curves) must hold at least one radius")
        if any(not 0 <= t <= 1 for t in self.taus):
            raise ValueError(f"every radius in taus must be in [0, 1], got {self.taus}")
        for g in GENERATORS:
            c = getattr(self, f"{g}_draws")
            if c < 1:
                raise ValueError(f"{g}_draws (draws per forget sample, c) must be at least 1, got {c}")
        if self.pgd_steps < 1:
            raise ValueError(f"pgd_steps must be at least 1, got {self.pgd_steps}")
        if not self.pgd_step_fraction > 0:
            raise ValueError(f"pgd_step_fraction (PGD step as a fraction of τ) must be positive, got {self.pgd_step_fraction}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")

    # -- estimation ------------------------------------------------------------------------------

    def _perturb(self, kind: str, model, x, y, tau: float, generator: torch.Generator) -> torch.Tensor:
        if kind == "gauss":
            noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device, x.dtype)
            return (x + tau * noise).clamp(0, 1)
        budget = dememo.Budget("linf", tau)
        if kind == "fgsm":
            steps, alpha = 1, tau
        else:
            steps, alpha = self.pgd_steps, self.pgd_step_fraction * tau
        delta = pgd(cross_entropy_loss(model), x, y, budget, steps=steps, alpha=alpha, direction="min",
                    generator=generator)
        return x + delta

    def hits(self, kind: str, m, a, x: torch.Tensor, y: torch.Tensor, tau: float,
             ctx: dememo.Context) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Per-sample counts of draws that m and a classify as y, and the number of draws c."""
        c = 1 if tau == 0 else getattr(self, f"{kind}_draws")  # at τ = 0 every draw is x itself
        generator = ctx.derive(f"residual-knowledge:{kind}").generator
        per_chunk = max(1, min(self.batch_size, dememo.training.eval_batch_size(x)) // c)
        hm = torch.zeros(len(x), dtype=torch.int64, device=x.device)
        ha = torch.zeros_like(hm)
        for start in range(0, len(x), per_chunk):
            sl = slice(start, start + per_chunk)
            xs, ys = x[sl].repeat_interleave(c, dim=0), y[sl].repeat_interleave(c, dim=0)
            xp = xs if tau == 0 else self._perturb(kind, m, xs, ys, tau, generator)
            with torch.inference_mode():
                hm[sl] = (m(xp).argmax(1) == ys).view(-1, c).sum(1)
                ha[sl] = (a(xp).argmax(1) == ys).view(-1, c).sum(1)
        return hm, ha, c

    def ratios(self, kind: str, m, a, x, y, tau: float, ctx) -> torch.Tensor:
        """r_τ(x) per sample (float64; NaN where the retrained model's count is 0)."""
        hm, ha, _ = self.hits(kind, m, a, x, y, tau, ctx)
        r = hm.double() / ha.double().clamp_min(1)
        return torch.where(ha > 0, r, torch.full_like(r, math.nan))

    @staticmethod
    def summary_of(r: torch.Tensor) -> tuple[float, float, int]:
        """(mean r over defined samples, share of defined samples with r > 1, number undefined)."""
        defined = ~torch.isnan(r)
        n = int(defined.sum())
        if n == 0:
            return math.nan, math.nan, int(len(r))
        rd = r[defined]
        return float(rd.mean()), float((rd > 1).double().mean()), int(len(r) - n)

    def compute(self, ev, ctx):
        forget = ev.task.forget
        out: dict[str, object] = {}
        if len(forget) == 0:
            nan_series = dememo.Series(self.taus, [math.nan] * len(self.taus), "tau")
            for g in GENERATORS:
                out.update({f"rk_{g}": math.nan, f"rk_{g}_share_gt1": math.nan, f"rk_{g}_undefined": 0.0,
                            f"rk_{g}_curve": nan_series, f"rk_{g}_share_gt1_curve": nan_series,
                            f"rk_{g}_undefined_curve": dememo.Series(self.taus, [0.0] * len(self.taus), "tau")})
            return out
        m, a = ev.model, ev.reference("retrained")
        x, y = forget.x, forget.y
        with evaluating(m, a):
            for g in GENERATORS:
                done: dict[float, tuple[float, float, int]] = {}

                def at(t: float) -> tuple[float, float, int]:
                    if t not in done:  # the leaderboard radius may lie on the grid: same draws, same value
                        done[t] = self.summary_of(self.ratios(g, m, a, x, y, t, ctx))
                    return done[t]

                mean, share, undefined = at(self.tau)
                out[f"rk_{g}"], out[f"rk_{g}_share_gt1"], out[f"rk_{g}_undefined"] = mean, share, float(undefined)
                curve = [at(t) for t in ctx.progress(self.taus, f"residual knowledge ({g})")]
                out[f"rk_{g}_curve"] = dememo.Series(self.taus, [v[0] for v in curve], "tau")
                out[f"rk_{g}_share_gt1_curve"] = dememo.Series(self.taus, [v[1] for v in curve], "tau")
                out[f"rk_{g}_undefined_curve"] = dememo.Series(self.taus, [float(v[2]) for v in curve], "tau")
        return out


@dememo.hookimpl
def register_metrics(register):
    register(ResidualKnowledge)
