"""The ``influence`` unlearner (plugins/dememo_plugins/unlearners/influence.py): behaviour tests and reference checks.

Reference checks of the second-order unlearners (Fisher forgetting, influence unlearning, certified Newton)
against their released formulas, each transcribed here as a plain per-sample Python loop over autograd (the
authors' own style), independent of the plugins' vmap / Woodbury / CG machinery.

ssd, fisher and influence (and their shared ``_fisher`` statistics): invariants, direction, sensitivity,
determinism and parameter errors.

- influence (α = 1, λ = 1, 256 samples): forget 0.0, other classes 0.907, forget cross-entropy
  0.30 → 2.74; α = 100: test 0.10.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from dememo.testing import tiny_context
from dememo.training import accuracy
from dememo_plugins.unlearners.influence import InfluenceUnlearning

from support.unlearners.fisher import _flat, _other_classes, _tiny, _unlearn
from support.unlearners.second_order import _flat_grad, setting  # noqa: F401 (pytest fixtures, used as arguments)


@pytest.mark.reference("unlearner", "influence", source="OPTML-Group/Unlearn-Sparse:unlearn/Wfisher.py "
                       "(revisions with a retain term: v = Σ∇_f/n − Σ∇_r·n_f/(n·n_r) = n_f/n·(ḡ_f − ḡ_r); "
                       "θ' = θ + α·F⁻¹v, F the damped empirical Fisher of retain per-sample gradients)")
def test_influence_step_is_the_damped_fisher_newton_step(setting):
    """The plugin's update must equal α·(λI + (1/m)Σ g_j g_jᵀ)⁻¹·(n_f/n)(ḡ_f − ḡ_r), computed here densely
    (P×P solve in float64) from per-sample gradients taken one sample at a time."""
    splits, model, task = setting
    model.eval()

    def grads(data):
        return torch.stack([_flat_grad(model, F.cross_entropy(model(x.unsqueeze(0)), y.unsqueeze(0)))
                            for x, y in zip(data.x, data.y, strict=True)])

    g_r, g_f = grads(task.retain), grads(task.forget)
    n_f, n_r = len(g_f), len(g_r)
    v = n_f / (n_f + n_r) * (g_f.mean(0) - g_r.mean(0))
    lam, alpha = 0.5, 2.0
    fisher = lam * torch.eye(v.numel(), dtype=torch.float64) + g_r.T @ g_r / n_r
    expected = alpha * torch.linalg.solve(fisher, v)
    # samples ≥ |D_r|: the plugin's Fisher holds every retain gradient, as the dense one here does
    got = InfluenceUnlearning(alpha=alpha, damping=lam, samples=10_000).step(model, task,
                                                                              tiny_context(splits, budget=None))
    assert torch.allclose(got.double(), expected, rtol=1e-3, atol=1e-7 * float(expected.abs().max()))
    # and unlearn adds exactly that step
    out = InfluenceUnlearning(alpha=alpha, damping=lam, samples=10_000).unlearn(copy.deepcopy(model), task,
                                                                                 tiny_context(splits, budget=None))
    moved = torch.cat([(q - p).reshape(-1) for p, q in zip(model.parameters(), out.parameters(), strict=True)])
    assert torch.allclose(moved.double(), expected, rtol=1e-3, atol=1e-6 * float(expected.abs().max()))


def _forget_loss(model, data):
    with torch.no_grad():
        return float(F.cross_entropy(model.eval()(data.x), data.y))


def test_influence_moves_toward_higher_forget_loss_on_noisy_shapes():
    model, s = _unlearn(InfluenceUnlearning(alpha=1.0))
    assert _forget_loss(model, s.task.forget) > 2 * _forget_loss(s.original, s.task.forget)  # measured 0.30 → 2.74
    assert accuracy(model, s.task.forget) < 0.2                                              # measured 0.0
    assert accuracy(model, _other_classes(s)) > 0.85                                         # measured 0.907


def test_influence_step_is_linear_in_alpha_and_too_large_a_step_destroys_the_model():
    model, task, splits = _tiny()
    ctx = lambda: tiny_context(splits, seed=0, budget=None)  # noqa: E731
    one = InfluenceUnlearning(alpha=1.0).step(model, task, ctx())
    five = InfluenceUnlearning(alpha=5.0).step(model, task, ctx())
    assert torch.allclose(five, 5 * one, rtol=1e-5, atol=1e-8)
    assert torch.equal(_flat(InfluenceUnlearning(alpha=0.0).unlearn(copy.deepcopy(model), task, ctx())), _flat(model))
    wild, s = _unlearn(InfluenceUnlearning(alpha=100.0))
    assert accuracy(wild, s.splits.test) < 0.4                                           # measured 0.10
