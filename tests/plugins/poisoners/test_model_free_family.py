"""The L2 model-free poisoners together (AR, LSP): budget, seeding, and adding the noise before clipping.

Model-free availability poisoners (LSP, AR, OPS, CUDA) do what their papers and docstrings say.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dememo.budget import Budget
from dememo_plugins.poisoners.ar import Autoregressive
from dememo_plugins.poisoners.lsp import LinearSeparablePerturbation

from support.poisoners.model_free import PROPERTY, classes, make_data, run, seeds, shapes


@PROPERTY
@given(shape=shapes, k=classes, eps=st.floats(0.05, 3.0), seed=seeds,
       method=st.sampled_from([LinearSeparablePerturbation(), Autoregressive(candidates=8)]))
def test_l2_poisoners_respect_budget_and_are_seeded(shape, k, eps, seed, method):
    data = make_data(*shape, k, seed)
    budget = Budget("l2", eps)
    out = run(method, data, budget, seed)
    assert torch.equal(out, run(method, data, budget, seed))
    assert not torch.equal(out, run(method, data, budget, seed + 1))


@pytest.mark.parametrize("method", [LinearSeparablePerturbation(), Autoregressive()])
def test_delta_is_added_then_clipped_never_clamped_first(method):
    # regression test for the public-code bug that clamps δ to [0, 1] before adding, dropping its negative half
    grey = make_data(3, 16, 4, 0, value=0.5)
    delta = run(method, grey, Budget("l2", 0.5), 0) - grey.x
    assert (delta < -1e-4).any() and (delta > 1e-4).any()
    assert torch.allclose(delta.flatten(1).norm(dim=1), torch.tensor(0.5), atol=1e-5)  # full ε: nothing clipped
    white = make_data(3, 16, 4, 0, value=1.0)  # only the negative half of δ can show on white images
    out = run(method, white, Budget("l2", 0.5), 0)
    assert torch.allclose(out, (white.x + delta).clamp(0, 1), atol=1e-6) and (out < 1 - 1e-4).any()
