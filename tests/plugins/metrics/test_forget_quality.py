"""The ``forget-quality`` metric (plugins/dememo_plugins/metrics/forget_quality.py): behaviour tests and reference checks.

Membership tests that need many models: U-LiRA, the NeurIPS 2023 forget-quality score, and exact
Feldman–Zhang memorization with its one-run proxies.

Reference checks of the many-model membership metrics (issue 17): ``forget-quality`` against the NeurIPS
2023 challenge's released scoring code, and ``u-lira`` against the procedure of Hayes et al.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo_plugins.metrics.forget_quality import (
    bucket_score,
    challenge_confidence,
    challenge_epsilons,
    challenge_score,
    epsilon,
    upper_rate,
)

from support.metrics.membership import membership  # noqa: F401 (pytest fixtures, used as arguments)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_epsilon_is_bounded_and_symmetric(n, f, seed):
    rng = np.random.default_rng(seed)
    u, r = rng.normal(0, 1, (n, f)), rng.normal(rng.uniform(-3, 3), 1, (n, f))
    eps = epsilon(u, r)
    assert eps.shape == (f,) and bool(((eps >= 0) & (eps <= 50)).all())
    assert np.allclose(eps, epsilon(r, u)), "telling unlearned from retrained is the same test both ways"
    h = bucket_score(eps)
    assert bool(((h > 0) & (h <= 1)).all())


def test_epsilon_resolution_grows_with_models():
    """Perfectly separated groups: ε = log((1 − b)/b) with b the Clopper–Pearson bound of 0/N errors."""
    rng = np.random.default_rng(0)
    for n in (8, 32):
        u, r = rng.normal(10, 1, (n, 50)), rng.normal(0, 1, (n, 50))
        b = float(upper_rate(np.zeros(1), n)[0])
        assert epsilon(u, r) == pytest.approx(np.full(50, np.log((1 - 1e-5 - b) / b)), rel=1e-6)
    same = rng.normal(0, 1, (32, 200))
    assert bucket_score(epsilon(same, rng.normal(0, 1, (32, 200)))).mean() > 0.9


def test_forget_quality_separates_original_from_retrain(membership):
    """digits, random 10 %, N = 16 per group (forget-quality version 2). The challenge-exact score is low
    for every row at this N (its last bucket ends at ε = 3; the noise floor of identical groups is
    F ≈ 0.2 on synthetic Gaussians): measured retrain 0.149 (mean ε 1.70), original 0.106 (mean ε 5.99),
    by the same computation through the Python API. The Clopper–Pearson variant keeps its earlier
    figures: retrain 0.99, original 0.838."""
    assert membership["retrain"]["forget_quality"] > membership["original"]["forget_quality"]
    assert membership["original"]["forget_quality_eps"] > membership["retrain"]["forget_quality_eps"] + 2
    assert membership["retrain"]["forget_quality_cp"] > 0.9
    assert membership["original"]["forget_quality_cp"] < membership["retrain"]["forget_quality_cp"] - 0.1


def ref_confidence(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """compute_logit_scaled_confidence for one model: float32 logits, max removed, exp, float64 softmax."""
    n = logits.shape[0]
    z = logits.copy()
    z -= np.max(z, axis=1, keepdims=True)
    probs = np.array(np.exp(z), dtype=np.float64)
    probs /= np.sum(probs, axis=1, keepdims=True)
    correct = probs[np.arange(n), targets[:n]]
    probs[np.arange(n), targets[:n]] = 0
    wrong = np.sum(probs, axis=1)
    return np.log(correct + 1e-45) - np.log(wrong + 1e-45)


def ref_double(pos, neg):
    """Interval rule "l ≤ c ≤ r": predicts the group with the smaller range, on the released grids."""
    pos_diff = pos.max() - pos.min()
    neg_diff = neg.max() - neg.min()
    smallest = neg_diff if pos_diff > neg_diff else pos_diff
    if pos_diff >= neg_diff:
        pos, neg = neg, pos
    buffer, width = 2.0, smallest
    lo = (pos.min() + width - buffer).numpy()
    hi = (pos.max() + buffer).numpy()
    rights = np.linspace(lo, hi, num=int(np.ceil((hi - lo) * 100)))
    width = width.numpy()
    n_left = int(np.ceil(2 * buffer * 100))
    lefts = np.concatenate([np.linspace(r - width - buffer, r - width + buffer, num=n_left) for r in rights])
    rights = np.tile(rights.reshape(-1, 1), (1, n_left)).reshape(-1)
    m = pos.shape[0]
    left_t = torch.from_numpy(np.tile(lefts[None], (m, 1)))
    right_t = torch.from_numpy(np.tile(rights[None], (m, 1)))

    def inside(c):
        c = torch.tile(c[:, None], (1, left_t.shape[1]))
        return torch.logical_and(torch.le(left_t, c), torch.le(c, right_t)).type(torch.float32)

    pp_pos, pp_neg = inside(pos), inside(neg)
    return (torch.mean(pp_pos, 0), torch.mean(1 - pp_pos, 0), torch.mean(pp_neg, 0), torch.mean(1 - pp_neg, 0))


def ref_single(pos, neg):
    """Single rule "c ≥ t" on a float32 grid of 100 per unit over both groups."""
    both = torch.cat([pos, neg])
    lo, hi = both.min(), both.max()
    count = int(torch.ceil((hi - lo) * 100))
    t = torch.tile(torch.linspace(lo, hi, count)[None, :], (pos.shape[0], 1))
    p = torch.tile(pos[:, None], (1, count))
    q = torch.tile(neg[:, None], (1, count))
    return (torch.mean((p >= t).type(torch.float32), 0), torch.mean((p < t).type(torch.float32), 0),
            torch.mean((q >= t).type(torch.float32), 0), torch.mean((q < t).type(torch.float32), 0))


def ref_epsilons(pos_all: np.ndarray, neg_all: np.ndarray, delta: float = 1e-5) -> np.ndarray:
    out = []
    for i in range(pos_all.shape[1]):
        pos, neg = pos_all[:, i], neg_all[:, i]
        pd, nd = np.max(pos) - np.min(pos), np.max(neg) - np.min(neg)
        largest, smallest = (pd, nd) if pd > nd else (nd, pd)
        with np.errstate(divide="ignore", invalid="ignore"):
            peaky = smallest / largest < 0.01
        if peaky:
            out.append(50)
            continue
        p, q = torch.from_numpy(pos), torch.from_numpy(neg)
        d, s = ref_double(p, q), ref_single(p, q)
        tpr, fnr, fpr, tnr = (torch.cat([a, b]) for a, b in zip(d, s))
        eps = torch.zeros(tpr.shape[0])
        eps = torch.where((fpr + fnr == 0) & (tpr + tnr == 2), torch.full(eps.shape, np.inf), eps)
        eps = torch.where((eps == 0) & (fpr * fnr == 0), torch.full(eps.shape, np.nan), eps)
        fpr_n, fnr_n = fpr.numpy(), fnr.numpy()
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-nan pair is nan, as intended
            value = np.clip(np.nanmax([np.log(1 - delta - fpr_n) - np.log(fnr_n),
                                       np.log(1 - delta - fnr_n) - np.log(fpr_n)], axis=0), 0, None)
        eps = torch.where(eps == 0, torch.from_numpy(value), eps).numpy()
        kept = eps[~np.isnan(eps)]
        assert len(kept) > 0  # the released file asserts on the array itself
        out.append(np.nanmax(kept))
    return np.clip(out, 0, 50)


def ref_forget_score(unlearned: np.ndarray, retrained: np.ndarray) -> tuple[float, np.ndarray]:
    """compute_forget_score_from_confs: median decides the positive group; 0.5-wide buckets worth 1, 1/2, …
    up to ceil(log(N − 1)); returns F and the per-example ε."""
    s = retrained.shape[1]
    retrain_pos = np.median(retrained, axis=0) > np.median(unlearned, axis=0)
    eps = ref_epsilons(np.where(retrain_pos, retrained, unlearned), np.where(retrain_pos, unlearned, retrained))
    top = np.ceil(np.log(unlearned.shape[0] - 1))
    start, points, buckets = 0.0, 1.0, {}
    while start + 0.5 <= top:
        buckets[start] = points
        points /= 2
        start += 0.5
    score = 0.0
    for e in eps:
        for b, pts in buckets.items():
            if e < b + 0.5:
                score += pts
                break
    return score / s, eps


@pytest.mark.reference("metric", "forget-quality", source="google-deepmind/unlearning_evaluation:metric.py")
@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 16), s=st.integers(1, 3), shift=st.floats(-3, 3), spread=st.floats(0.2, 3.0),
       grid=st.sampled_from([0.0, 0.25]), peaky=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_forget_quality_matches_the_challenge_code_bit_for_bit(n, s, shift, spread, grid, peaky, seed):
    """Per-example ε and F of the challenge-exact mode equal the transcription of the organisers' metric.py
    exactly, on Gaussian arrays (some rounded to a 0.25 grid, so values tie and sit on thresholds; some with
    a near-constant unlearned group, the "peaky" cap)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(shift, spread * (1e-4 if peaky else 1.0), (n, s))
    r = rng.normal(0.0, 1.0, (n, s))
    if grid:
        u, r = np.round(u / grid) * grid, np.round(r / grid) * grid
    try:
        f_ref, eps_ref = ref_forget_score(u, r)
    except AssertionError:  # no rule survived (constant groups): the plugin must refuse as well
        with pytest.raises(ValueError):
            challenge_epsilons(u, r)
        return
    eps = challenge_epsilons(u, r)
    assert np.array_equal(eps, eps_ref.astype(np.float64)), (eps, eps_ref)
    assert challenge_score(eps, n) == f_ref


@pytest.mark.reference("metric", "forget-quality", source="google-deepmind/unlearning_evaluation:metric.py")
@settings(max_examples=20, deadline=None)
@given(k=st.integers(1, 4), s=st.integers(1, 6), c=st.integers(2, 10), scale=st.floats(0.1, 60.0),
       seed=st.integers(0, 2**31 - 1))
def test_challenge_confidence_matches_the_released_transform(k, s, c, scale, seed):
    """The statistic: float32 logits (large ones saturate near ±103 through the 1e-45 floors) give exactly
    compute_logit_scaled_confidence's values, model by model."""
    rng = np.random.default_rng(seed)
    logits = (rng.normal(0, scale, (k, s, c))).astype(np.float32)
    y = rng.integers(0, c, s)
    mine = challenge_confidence(torch.from_numpy(logits), torch.from_numpy(y))
    ref = np.stack([ref_confidence(logits[i], y) for i in range(k)])
    assert np.array_equal(mine, ref)


def test_forget_quality_power_at_the_suite_n():
    """At the quick suite's N = 16 per group, a 2σ shift of every forget example's confidence scores
    F < 0.8 (measured on 60 examples: 0.043; identical groups: 0.20 — at N = 16 the noise floor is low,
    the last bucket ends at ε = 3, so compare F with the ``retrain`` row, never with 1)."""
    rng = np.random.default_rng(0)
    shifted = challenge_score(challenge_epsilons(rng.normal(2, 1, (16, 60)), rng.normal(0, 1, (16, 60))), 16)
    same = challenge_score(challenge_epsilons(rng.normal(0, 1, (16, 60)), rng.normal(0, 1, (16, 60))), 16)
    assert shifted < 0.8
    assert shifted < same / 2
    # perfect separation is ε = ∞ → the cap, which lies past the last bucket and is worth 0
    far = challenge_epsilons(rng.normal(50, 1, (16, 5)), rng.normal(0, 1, (16, 5)))
    assert np.array_equal(far, np.full(5, 50.0)) and challenge_score(far, 16) == 0.0


def test_forget_quality_is_symmetric_and_deterministic():
    """Swapping which group is "unlearned" cannot change ε (the median decides the positive group), and the
    score is a pure function of the arrays."""
    rng = np.random.default_rng(3)
    u, r = rng.normal(0.7, 1.3, (12, 8)), rng.normal(0, 1, (12, 8))
    assert np.array_equal(challenge_epsilons(u, r), challenge_epsilons(r, u))
    assert np.array_equal(challenge_epsilons(u, r), challenge_epsilons(u.copy(), r.copy()))
    with pytest.raises(ValueError, match="N×S"):
        challenge_epsilons(u, r[:, :3])
