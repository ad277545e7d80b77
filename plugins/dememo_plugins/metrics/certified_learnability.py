"""``certified-learnability``: certified (q, η)-learnability by Gaussian parameter smoothing.

Wang et al., "Provably Unlearnable Data Examples" (PUE, NDSS 2025). Let A(θ) be the clean test accuracy of
f_θ and, for the learned weights θ̂, let the *smoothed* accuracy be the random variable A(θ̂ + ε) with
ε ~ N(0, σ²I) over all floating-point parameters. Its q-quantile h_q(θ̂) = inf{a : P(A(θ̂ + ε) ≤ a) ≥ q}
is the (q)-learnability. The certificate (percentile smoothing, Chiang et al., NeurIPS 2020, used by PUE):
for every θ with ‖θ − θ̂‖₂ ≤ η,

    h_q(θ) ≤ h_q̄(θ̂),   q̄ = Φ(Φ⁻¹(q) + η/σ),

so no model in the η-ball around θ̂ has a smoothed q-quantile accuracy above h_q̄(θ̂). h_q̄ is estimated from
N draws with accuracies a_(1) ≤ … ≤ a_(N): the k-th order statistic with k the smallest index such that
BinomCDF(k − 1; N, q̄) > 1 − α is an upper bound on h_q̄(θ̂) with probability ≥ 1 − α over the draws
(a_(k) < h_q̄ needs at least k draws below h_q̄, each with probability ≤ q̄). If no k ≤ N qualifies
(N too small for q̄), the bound is vacuous and reported as 1.0. Published setting: σ = 0.25, N = 1000,
q = 0.9, 1 − α = 0.99.

Released code: ``NeuralSec/certified-data-learnability``, ``certify.py`` (``certify``: q̄ as above, the
first k from ⌈q̄N⌉ to N with BinomCDF(k − 1; N, q̄) > 0.99, then index k − 1 into the ascending accuracies,
i.e. the same k-th order statistic; "abstain" where dememo reports 1.0). Other differences from that
code: it averages per-batch accuracies over a loader that drops the last partial batch (dememo: the exact
fraction over all images), and it reports the q-quantile by ``np.percentile`` (linear interpolation;
dememo's ``q_acc`` is the order statistic a_(⌈qN⌉)). ``tests/plugins/metrics/test_certified_learnability.py`` compares
``certified_bound`` with a transcription of that loop.

Columns: ``cert_acc`` = a_(k) at the configured η (lower is better for the data owner: even the best model
near θ̂ is certified to stay inaccurate); ``q_acc`` = the empirical q-quantile a_(⌈qN⌉) of the noisy
accuracies (η = 0, context).

Choices and caveats:

- The N noisy models are never copied: chunks of stacked parameter draws are swapped into the one module
  with ``torch.func.functional_call`` and, on accelerators, evaluated together with ``torch.vmap``
  (``weight_recovery.accuracies``). On CPU one call per draw is used, because vmap turns convolutions into
  grouped convolutions and was measured 3–4× slower there; both paths give the same accuracies (tested
  against a plain loop over model copies). Buffers (e.g. BatchNorm statistics) are not perturbed.
- Evaluated on the clean **test** split, as in PUE (the quantity certified is test accuracy). ``samples``
  (0 = all) evaluates a fixed random subset of that many test images instead, chosen with
  ``ctx.derive``: the certificate is then about accuracy on that subset. The cost is draws × images
  forward passes (small-cnn, one free CPU core: 200 draws × 500 images 3.5 s, 1000 × 1000 ~35 s; up to 3×
  slower on a loaded machine), so the CPU suite needs it.
- σ is in absolute weight units, as in the paper. σ = 0.25 only gives an informative certificate for
  models that stay accurate under that much weight noise (e.g. trained with parameter noise); a normally
  trained small network is destroyed by it. Measured (200 draws): ``small-cnn`` on noisy-shapes has 14,826
  parameters and ‖θ̂‖₂ ≈ 14, the noise has norm σ√d ≈ 30, and clean and EM-trained models alike fall to
  0.11–0.12 mean accuracy (q-acc 0.14–0.16), so the certificate cannot tell them apart. At σ = 0.03 the
  clean models keep q-acc 0.88–0.91 and the EM models 0.30–0.34. The suite should set ``sigma`` per dataset;
  the default keeps the paper's value.
- The default η = 0.25 (η/σ = 1) is dememo's: with N = 1000, q = 0.9 and α = 0.01 the certificate is
  vacuous beyond η/σ ≈ 1.25 (at N = 200, beyond ≈ 0.5).
- Only defined for the model as trained (``after_model_attack = False``): certifying an attacked model
  would be a different statement.
- **Unlearning track** (the SoK's depth guarantee for certified unlearning, arXiv 2605.11592): the same
  machinery with the **forget set** as the certified data (``_hidden``): ``cert_acc`` bounds the smoothed
  q-quantile *forget* accuracy of every model within ℓ2 distance η of the unlearned weights. It reads side
  by side with the ``depth`` metric's recovery curve at the same η (an attack's lower bound on what comes
  back against the certificate's upper bound), for any unlearner; for ``certified-newton`` it is the
  weight-space counterpart of its (ε, δ) certificate (recorded in the cell's ``unlearn_record``), which
  bounds the distinguishability of output distributions, not accuracy within a radius. ``samples``
  subsamples the forget set as it does the test set.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import numpy as np
import torch

import dememo
from dememo import validate
from dememo_plugins.attacks.weight_recovery import accuracies, draw_chunk, float_parameters, gaussian_offsets
from dememo_plugins.metrics._hidden import hidden_data


def noisy_accuracies(model: torch.nn.Module, data: dememo.Data, sigma: float, draws: int,
                     generator: torch.Generator) -> torch.Tensor:
    """Accuracy on ``data`` of ``draws`` models θ̂ + σ·N(0, I) (all floating-point parameters), vectorised."""
    params = float_parameters(model)
    chunk = draw_chunk(sum(p.numel() for p in params.values()))
    out = []
    for start in range(0, draws, chunk):
        offsets = gaussian_offsets(params, min(chunk, draws - start), generator)
        out.append(accuracies(model, data, {n: o.mul_(sigma) for n, o in offsets.items()}))
    return torch.cat(out)


def certified_index(n: int, q: float, eta: float, sigma: float, alpha: float) -> int | None:
    """The 1-based order statistic k certifying the q-quantile at radius η, or None if N is too small."""
    from scipy.stats import binom, norm  # here, not at import: 0.9 s on every dememo-bench start

    q_upper = norm.cdf(norm.ppf(q) + eta / sigma)
    ok = binom.cdf(np.arange(n), n, q_upper) > 1 - alpha  # entry k − 1 is BinomCDF(k − 1; N, q̄)
    return int(np.argmax(ok)) + 1 if ok.any() else None


def certified_bound(accs: torch.Tensor, q: float, eta: float, sigma: float, alpha: float) -> float:
    """Upper bound (confidence 1 − α) on the smoothed q-quantile accuracy of any θ in the η-ball; 1.0 if vacuous."""
    k = certified_index(len(accs), q, eta, sigma, alpha)
    return 1.0 if k is None else float(torch.sort(accs).values[k - 1])


def empirical_quantile(accs: torch.Tensor, q: float) -> float:
    """a_(⌈qN⌉): the inverse-CDF empirical q-quantile."""
    k = max(1, math.ceil(q * len(accs) - 1e-12))
    return float(torch.sort(accs).values[k - 1])


@attrs.define
class CertifiedLearnability(dememo.Metric):
    """Certified (q, η)-learnability (PUE, NDSS'25): order-statistic bound on Gaussian-smoothed test accuracy."""

    name: ClassVar[str] = "certified-learnability"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability", "unlearning")
    after_model_attack: ClassVar[bool] = False
    columns: ClassVar[dict[str, dememo.Column]] = {
        "cert_acc": dememo.Column("cert. (q,η)-acc", "lower",
                                  "certified upper bound on the q-quantile of Gaussian-smoothed accuracy of any model "
                                  "within ℓ2 distance η of the weights, on the clean test set (unlearnability) or the "
                                  "forget set (unlearning); 1 = vacuous"),
        "q_acc": dememo.Column("q-acc", "info", "empirical q-quantile of that accuracy under weight noise σ (η = 0)"),
    }
    sigma: float = 0.25
    draws: int = 1000
    q: float = 0.9
    eta: float = 0.25
    alpha: float = 0.01
    samples: int = 0

    def __attrs_post_init__(self):
        validate.in_range(0, math.inf, low_open=True, high_open=True, about="the smoothing noise std", sigma=self.sigma)
        validate.at_least(1, draws=self.draws)
        validate.in_range(0, 1, low_open=True, high_open=True, about="a quantile level", q=self.q)
        validate.in_range(0, math.inf, high_open=True, about="an ℓ2 radius", eta=self.eta)
        validate.in_range(0, 1, low_open=True, high_open=True, about="the failure probability", alpha=self.alpha)
        validate.non_negative(about="a number of test images, 0 = all", samples=self.samples)

    def compute(self, ev, ctx):
        test, _ = hidden_data(ev)
        if 0 < self.samples < len(test):
            pick = torch.randperm(len(test), generator=ctx.derive("certified-learnability:samples").generator,
                                  device=ctx.device)[: self.samples]
            test = test.subset(pick.to(test.device), "certified-samples")
        accs = noisy_accuracies(ev.model, test, self.sigma, self.draws, ctx.generator)
        return {"cert_acc": certified_bound(accs, self.q, self.eta, self.sigma, self.alpha),
                "q_acc": empirical_quantile(accs, self.q)}


@dememo.hookimpl
def register_metrics(register):
    register(CertifiedLearnability)
