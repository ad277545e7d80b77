"""The ``certified-learnability`` metric (plugins/dememo_plugins/metrics/certified_learnability.py): behaviour tests and reference checks.

Reference checks for the weight-space probes (issue 17): ``weight-recovery``'s projections, the ``depth``
metric with its fresh-initialisation control, ``weight-noise`` and ``certified-learnability``.

Weight-space probes of shallow unlearnability: ``weight-recovery`` and ``certified-learnability``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from scipy.stats import binom, norm

from dememo.testing import evaluation_for, tiny_context
from dememo.training import accuracy
from dememo_plugins.metrics import certified_learnability as cl
from dememo_plugins.metrics.certified_learnability import CertifiedLearnability

from support.metrics.depth import class0  # noqa: F401 (pytest fixtures, used as arguments)
from support.metrics.weight_space import PROPERTY
from support.metrics.weight_space_reference import PROPERTY as REFERENCE_PROPERTY  # noqa: F401 (pytest fixtures, used as arguments)
from support.metrics.weight_space_reference import tiny


def test_the_certificate_reads_the_forget_set_on_the_unlearning_track(class0):
    """(q, η) certificate of forget accuracy: the retrain is certified to stay near 0 within η, the original
    is not; the bound is never below the empirical q-quantile it extends."""
    _, models, _, measure = class0
    cert = CertifiedLearnability(sigma=0.05, eta=0.0125, draws=100)
    original, retrain = measure(models["original"], cert), measure(models["retrain"], cert)
    assert retrain["cert_acc"] <= 0.05 and original["cert_acc"] >= 0.9
    for v in (original, retrain):
        assert v["cert_acc"] >= v["q_acc"]


def released_certificate(acc_scores: list[float], q: float, eta: float, sigma: float) -> float | None:
    """certify.py's ``certify`` and its use, transcribed: q̄ = Φ(Φ⁻¹(q) + η/σ); for k from ⌈q̄N⌉ to N the first
    with BinomCDF(k − 1; N, q̄) > 0.99 gives index k − 1 into the ascending scores; none: abstain (None)."""
    scores = sorted(acc_scores)
    n = len(scores)
    q_upper = norm.cdf(norm.ppf(q) + eta / sigma)
    for k in range(math.ceil(q_upper * n), n + 1):
        if binom.cdf(k - 1, n, q_upper) > 0.99:
            return scores[k - 1]
    return None


@pytest.mark.reference("metric", "certified-learnability", source="NeuralSec/certified-data-learnability:certify.py")
@REFERENCE_PROPERTY
@given(n=st.integers(1, 1500), q=st.floats(0.5, 0.99), sigma=st.floats(0.02, 1.0), ratio=st.floats(0, 1.5),
       seed=st.integers(0, 2**16))
@example(n=1000, q=0.9, sigma=0.25, ratio=0.0, seed=0).via("the published setting")
@example(n=1000, q=0.9, sigma=0.25, ratio=0.4, seed=1).via("the published setting")
@example(n=200, q=0.9, sigma=0.05, ratio=0.25, seed=2).via("the quick suite's digits setting")
def test_certified_bound_equals_the_released_order_statistic(n, q, sigma, ratio, seed):
    """``certified_bound`` (α = 0.01) against the released loop on random accuracy lists (continuous, so
    neighbouring order statistics differ and an off-by-one index fails); the released "abstain" is dememo's
    vacuous 1.0."""
    accs = np.random.default_rng(seed).random(n)
    eta = ratio * sigma
    expected = released_certificate(list(accs), q, eta, sigma)
    got = cl.certified_bound(torch.tensor(accs, dtype=torch.float64), q, eta, sigma, 0.01)
    assert got == (1.0 if expected is None else expected)


def test_certified_learnability_metric_uses_the_released_bound_on_its_own_draws(tiny):
    """The metric's ``cert_acc`` is the released order statistic of the accuracies of its own noisy draws
    (recomputed here from the same generator), on the test set (unlearnability)."""
    splits, model = tiny
    metric = cl.CertifiedLearnability(sigma=0.05, draws=100, eta=0.01)
    ctx = tiny_context(splits, budget=None)
    out = metric.compute(evaluation_for(model, splits, "unlearnability"), ctx)
    accs = cl.noisy_accuracies(model, splits.test, 0.05, 100, tiny_context(splits, budget=None).generator)
    assert out["cert_acc"] == released_certificate(accs.tolist(), 0.9, 0.01, 0.05)


@PROPERTY
@given(n=st.integers(1, 3000), q=st.floats(0.5, 0.99), sigma=st.floats(0.01, 1.0),
       etas=st.tuples(st.floats(0, 2), st.floats(0, 2)), alpha=st.sampled_from([0.001, 0.01, 0.05]))
def test_certified_index_is_non_decreasing_in_eta(n, q, sigma, etas, alpha):
    small, large = sorted(etas)
    k_small, k_large = (cl.certified_index(n, q, e, sigma, alpha) for e in (small, large))
    inf = n + 1
    assert (k_small or inf) <= (k_large or inf)
    if k_small is not None:
        assert k_small >= np.ceil(q * n)  # at or above the empirical q-quantile


@PROPERTY
@given(n=st.integers(50, 1500), seed=st.integers(0, 2**16), eta=st.floats(0, 0.3))
def test_bound_is_at_least_the_empirical_quantile_and_grows_with_eta(n, seed, eta):
    accs = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).round(decimals=3)
    at0 = cl.certified_bound(accs, 0.9, 0.0, 0.25, 0.01)
    assert at0 >= cl.empirical_quantile(accs, 0.9)
    assert cl.certified_bound(accs, 0.9, eta, 0.25, 0.01) >= at0


def test_certificate_is_vacuous_when_too_few_draws_and_matches_the_published_setting():
    # q = 0.9, 1 − α = 0.99: at η = 0 the maximum of N draws certifies once 1 − 0.9^N > 0.99, i.e. N ≥ 44
    assert cl.certified_index(43, 0.9, 0.0, 0.25, 0.01) is None
    assert cl.certified_index(44, 0.9, 0.0, 0.25, 0.01) == 44
    assert cl.certified_bound(torch.full((43,), 0.3), 0.9, 0.0, 0.25, 0.01) == 1.0
    # N = 1000, σ = 0.25: order statistics 922 (η = 0) and 997 (η = σ); vacuous beyond η/σ ≈ 1.25
    assert cl.certified_index(1000, 0.9, 0.0, 0.25, 0.01) == 922
    assert cl.certified_index(1000, 0.9, 0.25, 0.25, 0.01) == 997
    assert cl.certified_index(1000, 0.9, 0.375, 0.25, 0.01) is None


def test_certificate_covers_the_true_quantile_with_the_promised_probability():
    # A ~ U(0, 1): the q̄-quantile is q̄ itself; the bound must fall below it in at most α of repetitions
    rng = np.random.default_rng(0)
    n, q, sigma, eta, alpha, reps = 200, 0.9, 0.25, 0.1, 0.01, 4000
    q_upper = norm.cdf(norm.ppf(q) + eta / sigma)
    k = cl.certified_index(n, q, eta, sigma, alpha)
    bounds = np.sort(rng.random((reps, n)), axis=1)[:, k - 1]
    failures = float((bounds < q_upper).mean())
    assert failures <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)
    assert failures > 0.1 * alpha  # and not absurdly conservative (k is the smallest valid index)


def test_metric_on_tiny_data_columns_noise_scale_and_vacuity(tiny):
    splits, model = tiny
    ev = evaluation_for(model, splits, "unlearnability")
    ctx = lambda: tiny_context(splits, budget=None)  # noqa: E731
    clean = accuracy(model, splits.test)
    quiet = CertifiedLearnability(sigma=1e-6, draws=50, eta=0.0).compute(ev, ctx())
    assert quiet["q_acc"] == pytest.approx(clean) and quiet["cert_acc"] == pytest.approx(clean)
    loud = CertifiedLearnability(sigma=3.0, draws=100, eta=0.0).compute(ev, ctx())
    assert loud["q_acc"] < clean - 0.2  # heavy weight noise destroys the tiny model
    assert loud["cert_acc"] >= loud["q_acc"]
    assert CertifiedLearnability(sigma=0.1, draws=20).compute(ev, ctx())["cert_acc"] == 1.0
    sub = CertifiedLearnability(sigma=0.1, draws=50, samples=10).compute(ev, ctx())
    assert all(abs(v * 10 - round(v * 10)) < 1e-9 for v in sub.values())  # accuracies on 10 images
    a, b = (CertifiedLearnability(sigma=0.3, draws=60).compute(ev, ctx()) for _ in range(2))
    assert a == b


@pytest.mark.parametrize("kw, match", [(dict(sigma=0.0), "sigma"), (dict(draws=0), "draws"), (dict(q=1.0), "q"),
                                       (dict(eta=-0.1), "eta"), (dict(alpha=0.0), "alpha"), (dict(samples=-1), "samples")])
def test_certified_learnability_rejects_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        CertifiedLearnability(**kw)
