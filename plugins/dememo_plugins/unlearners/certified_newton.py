"""``certified-newton``: certified removal from the linear head by one Newton step plus Gaussian noise.

Guo, Goldstein, Hannun and van der Maaten, "Certified Data Removal from Machine Learning Models" (ICML 2020),
with the output-perturbation form of Sekhari, Acharya, Kamath and Suresh, "Remember What You Want to
Forget: Algorithms for Machine Unlearning" (NeurIPS 2021).

The head θ = [W | b] (K × (F+1); the bias is a constant feature 1) over the frozen penultimate features
φ(x) (``dememo.models.features``) is treated as L2-regularised multinomial logistic regression,

    L(θ; S) = (1/|S|) Σ_{i∈S} CE(θ φ̃_i, y_i) + (λ/2) ‖θ‖²,      φ̃ = [φ; 1],

which is λ-strongly convex (λ on every entry, the bias included, so that it is). With D = D_r ∪ D_f,
n = |D|, m = |D_f|, n' = n − m:

1. θ_D = argmin L(θ; D), by L-BFGS (float64, strong-Wolfe line search) started at the model's own head.
2. One Newton step removes D_f (Guo et al., eq. 4):  θ⁻ = θ_D + H⁻¹ Δ, with H = ∇²L(θ_D; D_r) and
   Δ = (1/n') (Σ_{i∈D_f} ∇CE_i(θ_D) + m λ θ_D), the gradient contribution of the forget samples (their
   losses and their share of the regulariser; at an exact θ_D it equals −∇L(θ_D; D_r)). H⁻¹Δ is a
   Cholesky solve of the formed H when K(F+1) ≤ 1024, else conjugate gradients on exact Hessian-vector
   products (relative tolerance 1e-12); either way the certificate below measures what was computed.
3. Certificate and noise. The gradient residual r = ‖∇L(θ⁻; D_r)‖₂ is computed exactly (the data-dependent
   choice; Guo et al.'s Corollary 1 bounds the same quantity from above). Strong convexity gives
   ‖θ⁻ − θ*_r‖ ≤ r/λ for the exact retain optimum θ*_r, so releasing θ⁻ + N(0, σ² I) with
   σ = c(ε, δ) · r/λ is (ε, δ)-indistinguishable from releasing θ*_r + N(0, σ² I) (Gaussian mechanism with
   ℓ2-sensitivity r/λ; Sekhari et al.'s construction with the data-dependent distance in place of their
   worst-case bound). c(ε, δ) is the analytic Gaussian mechanism's multiplier (Balle and Wang, ICML 2018,
   Thm. 8: the smallest c with Φ(1/(2c) − εc) − e^ε Φ(−1/(2c) − εc) ≤ δ), which is exact for every ε > 0;
   the classic c = √(2 ln(1.25/δ))/ε holds only for ε < 1, and Guo et al.'s objective-perturbation
   constant √(2 ln(1.5/δ))/ε plays the same role. ε = ∞ adds no noise (the bare Newton step).

What is recorded: ``model.dememo_certificate``, also attached as ``model.dememo_record["certificate"]`` so the
harness writes it into each cell's ``unlearn_record`` (a dict: epsilon, delta, sigma, noise_multiplier c,
residual_norm r, distance_bound r/λ, l2, fit_grad_norm (‖∇L(θ_D; D)‖ after step 1), newton_step_norm,
n_retain, n_forget, solver, scope) and the same line through ``ctx.log.info``.

Scope of the guarantee — read before quoting ε: only the head is certified, *given the features*. The
feature extractor was trained on D_f and is left as it is, so the model as a whole is not certified and can
still reveal D_f (Guo et al. certify a head over features from public data or a DP extractor). The
certificate is also data-dependent: σ is a function of r, so the reference mechanism is "exact refit on
D_r, plus noise of this same σ", not a data-independent one (Guo et al. likewise use a data-dependent
residual bound to decide when to retrain). λ trades the head's fit against the noise σ = c·r/λ
(``search_space``).

Choices where the papers differ or are silent:

- Multinomial logistic (softmax cross-entropy, the loss the network was trained with) rather than Guo et
  al.'s K one-vs-rest binary logistic regressions: it keeps the head's meaning (probabilities, the
  original head as the starting point of step 1) and is equally strongly convex. Features are not
  normalised to ‖φ‖ ≤ 1 (Guo et al. do, for their worst-case bound): a per-sample normalisation cannot be
  folded into the model's linear head, and the strong-convexity bound used here does not need it.
- Output perturbation (noise on θ⁻, Sekhari et al.; the order fit → Newton step → noise) rather than Guo et
  al.'s objective perturbation (a random linear term bᵀθ in the training objective, with std c·ε'/ε fixed
  *before* the residual is known from a budget ε'; Algorithm 2 retrains when the residual exceeds it). The
  noise scale here is set from the residual actually measured. Measured with a budget taken from a
  noise-free pass: the residual with b in the objective was 2×–40× (noisy-shapes) and 600×–5,000× (digits)
  that budget at λ = 5e-4, ε ≤ 1 (Algorithm 2 would refit almost every time), 1×–4× at λ = 0.1; at
  λ = 0.1 and ε = 0.1 objective perturbation kept digits' head at 0.93–0.96 test accuracy where output
  perturbation gives 0.16 (H⁻¹b is small in well-determined directions). A second mechanism is future work.
- λ = 0.1 by default (dememo's choice, measured): the noise scale is c·r/λ, and r/λ falls roughly as
  1/λ² (Guo et al.'s bound is 4γC²/(λ²n)). With λ = 5e-4 (the recipe's weight decay) σ at ε = 1 is 3–5
  per weight and the head falls to chance; with λ = 0.1 σ ≈ 0.006 (noisy-shapes) / 0.03 (digits) and test
  accuracy stays within 0.01 of the original (0.91 / 0.96). Relative to Guo et al.'s unit-norm features
  this is λ/‖φ‖² ≈ 2e-4 (digits, ‖φ‖ ≈ 23) to 3e-3 (noisy-shapes, ‖φ‖ ≈ 6), at the upper end of their
  1e-6…1e-3. ε = 1, δ = 1e-5 (conventional values).
- ``search_space``: λ ∈ {0.03, 0.1, 0.3, 1}; ε and δ are the privacy requirement, not tuned. Measured
  (random 10 %, seeds 0–2, ε = 1): digits avg gap 0.350 / 0.032 / 0.020 / 0.025 (original 0.032, finetune
  0.029; λ = 0.03 fails by noise), noisy-shapes 0.040 / 0.038 / 0.053 / 0.117 (original 0.042, finetune
  0.047; large λ flattens the probabilities, MIA-efficacy 0.64 at λ = 1). Run time 0.08 × retraining on
  noisy-shapes, 0.4–0.9 × on digits (a 2,570-dimensional head).
- Class forgetting is a large removal (Guo et al.'s residual bound grows as m²): measured at λ = 0.1 the
  residual is 0.07 (digits) / 0.11 (noisy-shapes), ~100× that of 10 % random forgetting, so σ at ε = 1 is
  2.5–4 per weight and the head falls to chance (retain accuracy 0.11 / 0.17). The bare Newton step
  (ε = ∞) does remove the class (forget accuracy 0.02 / 0.0, retain 0.999 / 0.945). The certificate is
  reported as it is; a useful certified class removal needs a larger ε or several Newton steps.
- Step 1 runs on D_r ∪ D_f as the method prescribes (the forget set is read); 100 L-BFGS iterations
  (Guo et al.'s code default) to a gradient tolerance of 1e-10.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F

import dememo
from dememo import validate
from dememo import models

DENSE_LIMIT = 1024  # the Hessian (K(F+1))² is formed and factorised up to this head size, else CG
CG_TOL = 1e-12  # relative residual of the conjugate-gradient solve
_CHUNK = 1 << 22  # elements of the per-chunk n × K(F+1) product when forming the Hessian


def noise_multiplier(epsilon: float, delta: float) -> float:
    """c = σ/Δ of the analytic Gaussian mechanism (Balle and Wang 2018, Thm. 8) for (ε, δ); 0 for ε = ∞."""
    if math.isinf(epsilon):
        return 0.0

    def excess(c: float) -> float:
        args = torch.tensor([1 / (2 * c) - epsilon * c, -1 / (2 * c) - epsilon * c], dtype=torch.float64)
        log_phi = torch.special.log_ndtr(args).tolist()
        return math.exp(log_phi[0]) - math.exp(min(epsilon + log_phi[1], 700.0)) - delta

    lo, hi = 1e-3, 1.0
    while excess(lo) <= 0:
        lo /= 2
    while excess(hi) > 0:
        hi *= 2
    for _ in range(100):  # bisection in log space: excess is decreasing in c
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if excess(mid) <= 0 else (mid, hi)
    return hi


def augmented(feats: torch.Tensor, bias: bool) -> torch.Tensor:
    feats = feats.to(torch.float64)
    return torch.cat([feats, torch.ones(len(feats), 1, dtype=feats.dtype, device=feats.device)], 1) if bias else feats


def gradient_sum(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ_i ∇_θ CE(θ x_i, y_i) = (P − Y)ᵀ X, K × F."""
    p = torch.softmax(x @ theta.T, 1)
    p[torch.arange(len(y), device=y.device), y] -= 1
    return p.T @ x


def objective_gradient(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    return gradient_sum(theta, x, y) / max(len(x), 1) + l2 * theta


def fit_head(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, l2: float, steps: int) -> torch.Tensor:
    """argmin (1/n) Σ CE(θ x_i, y_i) + (λ/2)‖θ‖² by L-BFGS from ``theta`` (float64)."""
    theta = theta.clone().requires_grad_(True)
    if steps == 0:
        return theta.detach()
    opt = torch.optim.LBFGS([theta], lr=1, max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-16,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = F.cross_entropy(x @ theta.T, y) + 0.5 * l2 * theta.pow(2).sum()
        value.backward()
        return value

    opt.step(closure)
    return theta.detach()


def hessian(theta: torch.Tensor, x: torch.Tensor, l2: float) -> torch.Tensor:
    """∇²[(1/n) Σ CE + (λ/2)‖θ‖²] at θ as a K·F × K·F matrix (row-major θ): (1/n) Σ_i (diag p_i − p_i p_iᵀ) ⊗
    x_i x_iᵀ + λ I, accumulated over chunks of samples."""
    k, f = theta.shape
    h = torch.zeros(k * f, k * f, dtype=x.dtype, device=x.device)
    blocks = torch.zeros(k, f, f, dtype=x.dtype, device=x.device)
    step = max(1, _CHUNK // (k * f))
    for start in range(0, len(x), step):
        xc = x[start : start + step]
        p = torch.softmax(xc @ theta.T, 1)
        a = (p[:, :, None] * xc[:, None, :]).reshape(len(xc), k * f)
        h -= a.T @ a
        blocks += torch.bmm((p.T[:, :, None] * xc[None]).transpose(1, 2), xc.expand(k, -1, -1))
    for c in range(k):
        h[c * f : (c + 1) * f, c * f : (c + 1) * f] += blocks[c]
    h /= max(len(x), 1)
    h.diagonal().add_(l2)
    return h


def solve_dense(h: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(h)
    if int(info) == 0:
        return torch.cholesky_solve(rhs[:, None], chol)[:, 0]
    return torch.linalg.solve(h, rhs)


def solve_cg(theta: torch.Tensor, x: torch.Tensor, l2: float, rhs: torch.Tensor, max_iter: int = 5000) -> torch.Tensor:
    """H⁻¹ rhs by conjugate gradients with exact Hessian-vector products (H as in ``hessian``)."""
    k, f = theta.shape
    p = torch.softmax(x @ theta.T, 1)
    n = max(len(x), 1)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        z = x @ v.view(k, f).T
        s = p * z - p * (p * z).sum(1, keepdim=True)
        return (s.T @ x / n + l2 * v.view(k, f)).reshape(-1)

    sol = torch.zeros_like(rhs)
    r = rhs.clone()
    d = r.clone()
    rr = r @ r
    stop = (CG_TOL * rhs.norm()) ** 2
    for _ in range(max_iter):
        if rr <= stop:
            break
        hd = hvp(d)
        alpha = rr / (d @ hd)
        sol += alpha * d
        r -= alpha * hd
        rr_new = r @ r
        d = r + (rr_new / rr) * d
        rr = rr_new
    return sol


@attrs.define
class CertifiedNewton(dememo.Unlearner):
    """One Newton step on the convex linear head over frozen features, plus (ε, δ) Gaussian noise."""

    name: ClassVar[str] = "certified-newton"
    version: ClassVar[str] = "1"
    search_space: ClassVar[dict[str, tuple]] = {"l2": (0.03, 0.1, 0.3, 1.0)}
    epsilon: float = 1.0
    delta: float = 1e-5
    l2: float = 0.1
    fit_steps: int = 100

    def __attrs_post_init__(self):
        validate.positive(about="inf for no noise", epsilon=self.epsilon)
        validate.in_range(0, 1, low_open=True, high_open=True, delta=self.delta)
        validate.in_range(0, math.inf, low_open=True, high_open=True, l2=self.l2,
                          about="λ; the certificate needs a strongly convex head")
        validate.non_negative(fit_steps=self.fit_steps)

    def unlearn(self, model, task, ctx):
        head = models.last_linear(model)
        bias = head.bias is not None
        with torch.no_grad():
            theta = torch.cat([head.weight, head.bias[:, None]], 1) if bias else head.weight.clone()
        theta = theta.to(torch.float64)
        xr = augmented(models.features(model, task.retain.x, head), bias)
        xf = augmented(models.features(model, task.forget.x, head), bias)
        yr, yf = task.retain.y, task.forget.y
        n_r, n_f = len(xr), len(xf)
        if n_r == 0:
            raise ValueError("certified-newton needs a non-empty retain set")

        # 1. the head at the optimum of the regularised objective on D = D_r ∪ D_f
        x_all, y_all = torch.cat([xr, xf]), torch.cat([yr, yf])
        theta = fit_head(theta, x_all, y_all, self.l2, self.fit_steps)
        fit_grad = float(objective_gradient(theta, x_all, y_all, self.l2).norm())

        # 2. one Newton step removing D_f: θ⁻ = θ + H_r⁻¹ Δ
        delta_grad = (gradient_sum(theta, xf, yf) + n_f * self.l2 * theta) / n_r
        size = theta.numel()
        if size <= DENSE_LIMIT:
            step = solve_dense(hessian(theta, xr, self.l2), delta_grad.reshape(-1)).view_as(theta)
            solver = "cholesky"
        else:
            step = solve_cg(theta, xr, self.l2, delta_grad.reshape(-1)).view_as(theta)
            solver = "cg"
        unlearned = theta + step

        # 3. exact gradient residual, distance bound r/λ, Gaussian noise for (ε, δ)
        residual = float(objective_gradient(unlearned, xr, yr, self.l2).norm())
        c = noise_multiplier(self.epsilon, self.delta)
        sigma = c * residual / self.l2
        if sigma > 0:
            g = ctx.generator
            noise = torch.randn(unlearned.shape, generator=g, device=g.device, dtype=torch.float64)
            unlearned = unlearned + sigma * noise.to(unlearned.device)
        with torch.no_grad():
            w = unlearned.to(head.weight.dtype)
            head.weight.copy_(w[:, : head.in_features])
            if bias:
                head.bias.copy_(w[:, -1])
        certificate = {
            "epsilon": float(self.epsilon), "delta": float(self.delta), "sigma": sigma, "noise_multiplier": c,
            "residual_norm": residual, "distance_bound": residual / self.l2, "l2": float(self.l2),
            "fit_grad_norm": fit_grad, "newton_step_norm": float(step.norm()), "n_retain": n_r, "n_forget": n_f,
            "solver": solver, "scope": "linear head given the frozen (original) features",
        }
        model.dememo_certificate = certificate
        model.dememo_record = {"certificate": certificate}  # the harness writes it into the results
        ctx.log.info("certified-newton: ε=%g δ=%g σ=%.4g (c=%.4g) residual ‖∇L(θ⁻; D_r)‖=%.4g distance bound %.4g "
                     "λ=%g fit ‖∇L(θ; D)‖=%.3g step %.4g (%s; head only, given the features)", self.epsilon,
                     self.delta, sigma, c, residual, residual / self.l2, self.l2, fit_grad, float(step.norm()), solver)
        return model


@dememo.hookimpl
def register_unlearners(register):
    register(CertifiedNewton)
