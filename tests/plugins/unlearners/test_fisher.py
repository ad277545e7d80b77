"""The ``fisher`` unlearner (plugins/dememo_plugins/unlearners/fisher.py): behaviour tests and reference checks.

Reference checks of the second-order unlearners (Fisher forgetting, influence unlearning, certified Newton)
against their released formulas, each transcribed here as a plain per-sample Python loop over autograd (the
authors' own style), independent of the plugins' vmap / Woodbury / CG machinery.

ssd, fisher and influence (and their shared ``_fisher`` statistics): invariants, direction, sensitivity,
determinism and parameter errors.

- fisher: α = 1e-6 forget 0.913, other classes 0.911; α = 1e-4 destroys the model (test 0.11).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from dememo.testing import tiny_context
from dememo.training import accuracy
from dememo_plugins.unlearners import _fisher
from dememo_plugins.unlearners.fisher import FisherForgetting

from support.unlearners.fisher import _flat, _other_classes, _tiny, _unlearn
from support.unlearners.second_order import _flat_grad, setting  # noqa: F401 (pytest fixtures, used as arguments)


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


def test_fisher_alpha_zero_is_the_identity_and_noise_grows_as_sqrt_alpha():
    model, task, splits = _tiny()
    ctx = lambda: tiny_context(splits, seed=0, budget=None)  # noqa: E731
    before = _flat(model)
    same = FisherForgetting(alpha=0.0).unlearn(copy.deepcopy(model), task, ctx())
    assert torch.equal(_flat(same), before)
    small = _flat(FisherForgetting(alpha=1e-6).unlearn(copy.deepcopy(model), task, ctx())) - before
    large = _flat(FisherForgetting(alpha=1e-4).unlearn(copy.deepcopy(model), task, ctx())) - before
    assert float(small.norm()) > 0
    assert torch.allclose(large, 10 * small, rtol=1e-3, atol=1e-7)  # same draws, std ∝ √α


def test_fisher_noise_is_larger_where_the_retain_fisher_is_smaller():
    model, task, splits = _tiny()
    ctx = tiny_context(splits, seed=0, budget=None)
    ff = FisherForgetting(alpha=1e-6)
    var = ff.variance(model, task, ctx)
    fisher = _fisher.sampled_fisher_diagonal(model, task.retain, ctx.derive("fisher:labels").generator)
    order = fisher.argsort()
    assert bool((var[order][1:] <= var[order][:-1] * (1 + 1e-6)).all())  # variance non-increasing in F
    assert float(var.max()) == pytest.approx(1e-6 * 1e3)                 # the clamp on 1/F
    paper = FisherForgetting(alpha=1e-6, exponent=0.5).variance(model, task, ctx)
    assert torch.allclose(paper, 1e-6 * (var / 1e-6).sqrt(), rtol=1e-5)


def test_fisher_forgets_a_little_and_too_much_noise_destroys_the_model():
    mild, s = _unlearn(FisherForgetting(alpha=1e-6))
    wild, _ = _unlearn(FisherForgetting(alpha=1e-4))
    assert accuracy(mild, s.task.forget) < accuracy(s.original, s.task.forget)   # measured 0.947 → 0.913
    assert accuracy(mild, _other_classes(s)) > 0.85                              # measured 0.911
    assert accuracy(wild, s.splits.test) < 0.4                                   # measured 0.11
