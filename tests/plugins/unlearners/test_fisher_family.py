"""ssd, fisher and influence together and their shared ``_fisher`` statistics: per-sample statistics, Woodbury solve, determinism, parameters.

ssd, fisher and influence (and their shared ``_fisher`` statistics): invariants, direction, sensitivity,
determinism and parameter errors.

The behaviour on real data is asserted on noisy-shapes with class 0 forgotten (150 of 1,500 images): on
10 % *random* forgetting the embedded models barely memorise (original forget accuracy 0.92, retrain
0.89), so that is where the direction is unambiguous (and the setting other unlearner tests share).
Measured (seed 0, quick-suite recipe, 2 loaded CPU cores; the numbers the assertions leave room around):
the original classifies 0.947 of class 0, test accuracy 0.914, 0.916 on the other nine classes.

- ssd (α = 7, λ = 1): 22 of 14,826 small-cnn weights dampened; class 0 accuracy 0.0, other classes
  0.919. At α = 10 = |D|/|D_f| nothing can be selected and the model comes back bit-identical.
- fisher: α = 1e-6 forget 0.913, other classes 0.911; α = 1e-4 destroys the model (test 0.11).
- influence (α = 1, λ = 1, 256 samples): forget 0.0, other classes 0.907, forget cross-entropy
  0.30 → 2.74; α = 100: test 0.10.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dememo.data import Data
from dememo.testing import tiny_context
from dememo_plugins.unlearners import _fisher
from dememo_plugins.unlearners.fisher import FisherForgetting
from dememo_plugins.unlearners.influence import InfluenceUnlearning
from dememo_plugins.unlearners.ssd import SelectiveSynapticDampening

from support.unlearners.fisher import _flat, _tiny


def _loop_gradients(model, x, y):
    params = [p for _, p in _fisher.trainable(model)]
    rows = []
    for i in range(len(x)):
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    return torch.stack(rows)


def _small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.GroupNorm(1, 7), nn.ReLU(), nn.Linear(7, 3)).eval()


def test_per_sample_statistics_match_a_python_loop():
    model = _small_model()
    x, y = torch.rand(40, 3, 2, 2), torch.randint(0, 3, (40,))
    data = Data.from_tensors(x, y, 3)
    rows = _loop_gradients(model, x, y)
    assert torch.allclose(_fisher.per_sample_gradients(model, x, y), rows, atol=1e-6)
    assert torch.allclose(_fisher.empirical_fisher_diagonal(model, data), rows.square().mean(0), atol=1e-7)
    assert torch.allclose(_fisher.mean_gradient(model, data, batch_size=7), rows.mean(0), atol=1e-7)
    # the true Fisher: Σ_c p(c|x) (∂ log p(c|x))², one backward pass per class
    params = [p for _, p in _fisher.trainable(model)]
    ref = torch.zeros(rows.shape[1])
    for i in range(len(x)):
        logp = torch.log_softmax(model(x[i : i + 1]), -1)[0]
        for c in range(3):
            g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(logp[c], params, retain_graph=True)])
            ref += logp[c].exp().detach() * g.square()
    assert torch.allclose(_fisher.true_fisher_diagonal(model, data), ref / len(x), atol=1e-6)


def test_sampled_fisher_is_an_unbiased_estimate_of_the_true_fisher():
    model = _small_model()
    x = torch.rand(20, 3, 2, 2)
    data = Data.from_tensors(x.repeat(200, 1, 1, 1), torch.zeros(4000, dtype=torch.int64), 3)
    exact = _fisher.true_fisher_diagonal(model, Data.from_tensors(x, torch.zeros(20, dtype=torch.int64), 3))
    sampled = _fisher.sampled_fisher_diagonal(model, data, torch.Generator().manual_seed(0))
    assert torch.allclose(sampled, exact, rtol=0.15, atol=1e-3 * float(exact.max()))


@pytest.mark.parametrize("out_of_core", [False, True])
def test_woodbury_solve_equals_the_dense_inverse(monkeypatch, out_of_core):
    model = _small_model()
    x, y = torch.rand(30, 3, 2, 2), torch.randint(0, 3, (30,))
    rows = _loop_gradients(model, x, y)
    v, damping = torch.randn(rows.shape[1]), 0.05
    dense = torch.linalg.solve((damping * torch.eye(rows.shape[1]) + rows.T @ rows / 30).double(), v.double()).float()
    if out_of_core:  # blocks of 7 gradients, chunks of 3: the Gram matrix is assembled from recomputed blocks
        monkeypatch.setattr(_fisher, "CACHE_BYTES", 4 * rows.shape[1] * 7)
        monkeypatch.setattr(_fisher, "BUDGET", {"cpu": rows.shape[1] * 3})
    out = _fisher.damped_fisher_solve(model, Data.from_tensors(x, y, 3), v, damping)
    assert torch.allclose(out, dense, rtol=1e-3, atol=1e-4 * float(dense.abs().max()))


@pytest.mark.parametrize("unlearner", [SelectiveSynapticDampening(alpha=2.0), FisherForgetting(alpha=1e-5),
                                       InfluenceUnlearning(alpha=3.0, samples=20)])
def test_deterministic_under_a_seed(unlearner):
    model, task, splits = _tiny()
    a = _flat(unlearner.unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=0, budget=None)))
    b = _flat(unlearner.unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=0, budget=None)))
    assert torch.equal(a, b)
    if isinstance(unlearner, FisherForgetting):  # the noise is the seed's
        c = _flat(unlearner.unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=1, budget=None)))
        assert not torch.equal(a, c)


@pytest.mark.parametrize("cls, kwargs, match", [
    (SelectiveSynapticDampening, {"alpha": 0.0}, "alpha"),
    (SelectiveSynapticDampening, {"lam": -1.0}, "lam"),
    (FisherForgetting, {"alpha": -1e-6}, "alpha"),
    (FisherForgetting, {"exponent": 0.0}, "exponent"),
    (FisherForgetting, {"max_inverse": 0.0}, "max_inverse"),
    (InfluenceUnlearning, {"alpha": -1.0}, "alpha"),
    (InfluenceUnlearning, {"damping": 0.0}, "damping"),
    (InfluenceUnlearning, {"samples": 0}, "samples"),
])
def test_invalid_parameters_are_clear_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [SelectiveSynapticDampening, FisherForgetting, InfluenceUnlearning])
def test_search_space_names_fields_and_includes_the_defaults(cls):
    fields = {f.name: f.default for f in cls.__attrs_attrs__}
    assert cls.search_space and set(cls.search_space) <= set(fields)
    combos = 1
    for name, values in cls.search_space.items():
        combos *= len(values)
        assert fields[name] in values
    assert combos <= 12
