"""Reference checks of the second-order unlearners (Fisher forgetting, influence unlearning, certified Newton)
against their released formulas, each transcribed here as a plain per-sample Python loop over autograd (the
authors' own style), independent of the plugins' vmap / Woodbury / CG machinery."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo_plugins.unlearners.fisher import FisherForgetting
from dememo_plugins.unlearners.influence import InfluenceUnlearning


@pytest.fixture(scope="module")
def setting():
    splits = tiny_splits(n_train=48, n_val=12, n_test=12)
    model = tiny_context(splits, budget=None).train(splits.train)
    return splits, model, tiny_task(splits, forget_fraction=0.25, seed=0)


def _flat_grad(model, loss, retain: bool = False) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=retain)]).double()


@pytest.mark.reference("unlearner", "fisher", source="OPTML-Group/Unlearn-Sparse:unlearn/fisher.py "
                       "(hessian() at loader batch size 1: Σ_y p(y|x)·(∂ CE(x, y)/∂θ)², averaged over the "
                       "loader; get_mean_var(): var = α·clamp(1/(F + 1e-8), max 1e3))")
def test_fisher_variance_is_alpha_over_the_true_fisher_clamped(setting):
    """With ``exact = True`` the plugin's noise variance must equal α·min(1/F, 1e3) for F the released
    true-Fisher diagonal: one backward pass per (sample, class), weighted by the model's own p(class)."""
    splits, model, task = setting
    model.eval()
    fisher = None
    for x, _ in zip(task.retain.x, task.retain.y, strict=True):
        logits = model(x.unsqueeze(0))
        prob = logits.softmax(-1).detach()[0]
        for c in range(splits.num_classes):
            g = _flat_grad(model, F.cross_entropy(logits, torch.tensor([c])), retain=True)
            fisher = prob[c] * g**2 if fisher is None else fisher + prob[c] * g**2
    fisher /= len(task.retain)
    alpha = 3e-6
    expected = alpha * torch.where(fisher > 0, 1 / fisher, torch.inf).clamp(max=1e3)
    got = FisherForgetting(alpha=alpha, exact=True).variance(model, task, tiny_context(splits, budget=None)).double()
    assert torch.allclose(got, expected, rtol=1e-4, atol=0)
    # the clamp binds somewhere and not everywhere, so the check sees both branches
    assert 0 < (expected == alpha * 1e3).float().mean() < 1


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
