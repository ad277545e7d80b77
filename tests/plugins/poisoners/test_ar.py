"""The ``ar`` poisoner (plugins/dememo_plugins/poisoners/ar.py): behaviour tests and reference checks.

Model-free availability poisoners (LSP, AR, OPS, CUDA) do what their papers and docstrings say.

- AR: github.com/psandovalsegura/autoregressive-poisoning, ``autoregressive.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dememo.budget import Budget
from dememo.testing import tiny_context
from dememo_plugins.poisoners.ar import Autoregressive, run_recurrence

from support.poisoners.model_free import PROPERTY, classes, clean_accuracy, make_data, noisy_shapes_accuracy, run, seeds  # noqa: F401 (pytest fixtures, used as arguments)
from support.poisoners.model_free_reference import grey_data


def ar_residual(delta: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """What the AR filter (β, −1) leaves of δ at every position whose window lies inside the image."""
    k = beta.shape[-1]
    windows = delta.unfold(2, k, 1).unfold(3, k, 1)  # N×C×(H−k+1)×(W−k+1)×k×k
    b = beta.clone()
    b[..., -1, -1] = 0
    return (windows * b[:, :, None, None]).sum((-2, -1)) - windows[..., -1, -1]


@PROPERTY
@given(channels=st.sampled_from([1, 3]), size=st.sampled_from([8, 16]), k=classes, seed=seeds)
def test_ar_gives_each_image_a_fresh_sample_of_its_class_process(channels, size, k, seed):
    ar = Autoregressive(candidates=8)  # few candidates: faster, and the Σ|β| = 1 fallback is exercised too
    grey = make_data(channels, size, k, seed, value=0.5)
    budget = Budget("l2", 0.02 * size)
    delta = run(ar, grey, budget, seed) - grey.x
    beta = ar.coefficients(k, channels, (size, size), tiny_context(seed=seed, budget=budget))
    own = ar_residual(delta, beta[grey.y]).abs().amax()
    other = ar_residual(delta, beta[(grey.y + 1) % k]).abs().amax()
    assert own < 1e-4 * float(delta.abs().amax()) + 1e-6 < other  # predicted exactly by its own class's filter
    same = delta[grey.y == 0]
    assert not torch.allclose(same[0], same[1])  # sample-wise: a fresh sample per image


def test_ar_stays_finite_where_sum_normalised_coefficients_diverge():
    # the public coefficient-file bug: β ~ N(0, 1) divided by its sum often gives a diverging process
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(200, 3, 3, generator=g)
    raw[:, -1, -1] = 0
    raw = raw / raw.sum((-2, -1), keepdim=True)
    naive = run_recurrence(raw, torch.randn(200, 36, 36, generator=g))[:, 4:, 4:].abs().flatten(1).amax(1)
    assert (~torch.isfinite(naive) | (naive > 1e6)).float().mean() > 0.2  # the bug is real
    data = make_data(3, 32, 10, 0)
    for seed in range(5):
        out = run(Autoregressive(), data, Budget("l2", 1.0), seed)
        assert torch.isfinite(out).all()
        beta = Autoregressive().coefficients(10, 3, (32, 32), tiny_context(seed=seed, budget=Budget("l2", 1.0)))
        sample = run_recurrence(beta, torch.randn(10, 3, 36, 36, generator=g))[..., 4:, 4:]
        assert torch.isfinite(sample).all() and sample.abs().amax() < 1e3


@PROPERTY
@given(seed=seeds)
def test_ar_output_is_finite_for_many_seeds(seed):
    out = run(Autoregressive(), make_data(3, 16, 12, seed), Budget("l2", 1.0), seed)
    assert torch.isfinite(out).all()


def test_ar_at_its_l2_budget_does_not_reduce_accuracy_on_noisy_shapes(clean_accuracy):
    # measured within ±0.04 of clean: the AR texture (RMS 0.018) is buried under the data's own white
    # noise (std 0.1 per pixel); see ar.py
    assert noisy_shapes_accuracy(Autoregressive()) > clean_accuracy - 0.08


def released_ar_fill(beta: np.ndarray, canvas: np.ndarray) -> np.ndarray:
    """The released ``ARProcessPerturb3Channel.generate`` recurrence, one channel: row by row, the value at
    (i + k − 1, j + k − 1) becomes Σ_ab β[a, b] · canvas[i + a, j + b] over the k×k window (its last tap 0)."""
    out = canvas.copy()
    k = beta.shape[0]
    for i in range(out.shape[0] - k + 1):
        for j in range(out.shape[1] - k + 1):
            out[i + k - 1, j + k - 1] = sum(beta[a, b] * out[i + a, j + b] for a in range(k) for b in range(k)
                                            if (a, b) != (k - 1, k - 1))
    return out


@pytest.mark.reference("poisoner", "ar", source="psandovalsegura/autoregressive-poisoning:autoregressive.py")
def test_ar_is_the_released_recurrence_and_its_filter_answers_zero():
    """psandovalsegura/autoregressive-poisoning, autoregressive.py (ARProcessPerturb3Channel): coefficients
    N(0, 1) with the last tap 0, divided by their sum; ``generate`` fills a random canvas row by row with
    the recurrence, crops, and scales to norm ε; ``get_filter`` (β with −1 as the last tap) answers 0 on the
    process's own samples. Checked: the plugin's recurrence equals the row-by-row loop above; its
    coefficients have a zero last tap and sum to 1 (or, the documented fallback, Σ|β| = 1); and every δ_i
    has norm ε and zero response to its own class's filter, not to another class's."""
    from dememo_plugins.poisoners.ar import Autoregressive, run_recurrence

    g = torch.Generator().manual_seed(0)
    beta = torch.randn(3, 3, 3, generator=g, dtype=torch.float64)
    beta[:, -1, -1] = 0
    beta = beta / beta.abs().sum((-2, -1), keepdim=True)  # bounded, so the comparison is well conditioned
    canvas = torch.randn(3, 12, 12, generator=g, dtype=torch.float64)
    ours = run_recurrence(beta, canvas).numpy()
    for c in range(3):
        np.testing.assert_allclose(ours[c], released_ar_fill(beta[c].numpy(), canvas[c].numpy()), atol=1e-12)

    ar, k, size = Autoregressive(candidates=8), 4, 12
    data = grey_data(3, size, k, 3)
    budget = Budget("l2", 0.5)
    coef = ar.coefficients(k, 3, (size, size), tiny_context(seed=1, budget=budget)).double()
    assert (coef[..., -1, -1] == 0).all()
    sums, abs_sums = coef.sum((-2, -1)), coef.abs().sum((-2, -1))
    assert (torch.isclose(sums, torch.ones_like(sums)) | torch.isclose(abs_sums, torch.ones_like(abs_sums))).all()
    delta = (ar.poison(data, tiny_context(seed=1, budget=budget)) - data.x).double()
    assert torch.allclose(delta.flatten(1).norm(dim=1), torch.full((len(delta),), 0.5, dtype=torch.float64), atol=1e-5)

    def response(d, b):  # the released matching filter, per channel: β with −1 as the last tap
        f = b.clone()
        f[:, -1, -1] = -1
        return torch.nn.functional.conv2d(d[None], f[:, None], groups=3).abs().amax()

    for i in range(len(data)):
        own = response(delta[i], coef[data.y[i]])
        other = response(delta[i], coef[(data.y[i] + 1) % k])
        assert own < 1e-4 * float(delta[i].abs().amax()) < other
