"""Reference checks of SAL and UD (Ye, Su and Qian, "How Far Are We from True Unlearnability?", ICLR 2025)
against the authors' released code, MLsecurityLab/HowFarAreFromTrueUnlearnability: the layer probe of
``poison_train_sharp.py`` (as dememo documents its deviations: exact L_0, projection after every step) and the
threshold / #LP / UD computation of ``analysis/get_ud.py`` (scikit-learn's KMeans, as released)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.evaluation import Evaluation
from dememo.testing import tiny_context, tiny_splits
from dememo_plugins.metrics import sal


def released_ud(clean: np.ndarray, poisoned: np.ndarray) -> float:
    """get_ud.py: β = mean over epochs of the KMeans(2) centre midpoint of the clean model's per-layer SAL;
    #LP = Σ(SAL > β) / epochs; UD = #LP(poisoned) / #LP(clean)."""
    from sklearn.cluster import KMeans

    mids = []
    for row in clean:  # one epoch's per-layer values
        centres = KMeans(n_clusters=2, random_state=0, n_init="auto").fit(row.reshape(-1, 1)).cluster_centers_[:, 0]
        mids.append((centres.min() + centres.max()) / 2)
    beta = float(np.mean(mids))
    return (np.sum(poisoned > beta) / len(poisoned)) / (np.sum(clean > beta) / len(clean))


@pytest.mark.reference("metric", "ud", source="MLsecurityLab/HowFarAreFromTrueUnlearnability:analysis/get_ud.py")
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), epochs=st.integers(1, 5), layers=st.integers(3, 9))
def test_ud_is_the_released_learnable_layer_ratio(seed, epochs, layers):
    rng = np.random.default_rng(seed)
    # two well-separated groups per epoch, so that KMeans (a local search) finds the optimum the plugin solves for
    def profile():
        high = rng.random((epochs, layers)) < 0.5
        high[:, 0], high[:, 1] = True, False
        return np.where(high, 1.0 + rng.random((epochs, layers)), 0.1 * rng.random((epochs, layers)))

    clean, poisoned = profile(), profile()
    splits = tiny_splits()
    ev = Evaluation(model=None, splits=splits, track="unlearnability", train_data=splits.train)
    with mock.patch.object(sal.UD, "profiles", lambda self, ev, ctx: (poisoned, clean)):
        got = sal.UD().compute(ev, tiny_context(splits))["ud"]
    assert got == pytest.approx(released_ud(clean, poisoned), rel=1e-12)


@pytest.mark.reference("metric", "sal", source="MLsecurityLab/HowFarAreFromTrueUnlearnability:poison_train_sharp.py "
                       "(per-layer probe: move one weight tensor within 5 % of its norm by SGD, up and down; SAL = the "
                       "larger of the loss rise and drop, running extremes started at L_0)")
@pytest.mark.parametrize("layer", [0, 1])
def test_layer_probe_is_projected_sgd_on_one_layer_with_running_extremes(layer):
    """A loop transcription on a two-layer MLP: for each direction, SGD steps on the chosen weight only, each
    followed by projection onto ‖W − W₀‖ ≤ r‖W₀‖ (r = 0.01 here, so that it binds); after every pass the full-data loss updates a running
    max (ascent) / min (descent) that starts at L_0."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x, y = torch.rand(40, 1, 4, 4), torch.randint(0, 3, (40,))
    param = [model[1].weight, model[3].weight][layer]
    w0 = param.detach().clone()
    radius = 0.01 * float(w0.norm())  # small enough that the projection binds

    def full_loss():
        with torch.no_grad():
            return float(F.cross_entropy(model(x), y))

    base, extremes = full_loss(), {}
    for sign in (1.0, -1.0):
        best = base
        for _ in range(2):
            for s in range(0, 40, 16):
                loss = F.cross_entropy(model(x[s:s + 16]), y[s:s + 16])
                (g,) = torch.autograd.grad(loss, param)
                with torch.no_grad():
                    d = param + sign * 0.5 * g - w0
                    param.copy_(w0 + d * min(1.0, radius / max(float(d.norm()), 1e-30)))
            best = max(best, full_loss()) if sign > 0 else min(best, full_loss())
        extremes[sign] = best
        with torch.no_grad():
            param.copy_(w0)
    s_max, s_min = extremes[1.0] - base, base - extremes[-1.0]

    got_max, got_min = sal.probe_layer(model, param, x, y, passes=2, lr=0.5, radius=0.01, batch_size=16)
    # differences of float32 losses near 1: agreement to a few float32 ulps
    assert got_max == pytest.approx(s_max, abs=1e-6) and got_min == pytest.approx(s_min, abs=1e-6)
    assert s_max > 0 and s_min > 0  # both probes moved the loss, so both branches are exercised
    assert sal.sal_value(got_max, got_min) == pytest.approx(max(s_max, s_min), abs=1e-6)
    assert torch.equal(param, w0)  # the model is left as it was
