"""The ``certified-newton`` unlearner (plugins/dememo_plugins/unlearners/certified_newton.py): behaviour tests and reference checks.

eu-k, cf-k and certified-newton: invariants, the Newton step's accuracy, the certificate, errors.

- certified-newton (λ = 0.1): the Newton step lands 0.0017 from the head refitted on the retain features
  alone, against 0.074 for the head fitted on all training features (ratio 0.02); the exact residual
  r = 9.0e-4 gives the distance bound r/λ = 0.009 ≥ 0.0017. At ε = 1, δ = 1e-5 σ = 0.034 and test
  accuracy 0.91–0.96 (original 0.97); at ε = 0.1 σ = 0.28 and test accuracy 0.27. Removing a whole class
  (class 0): the step alone brings forget accuracy to 0.02 with retain 0.999, but its residual is 75×
  larger, so a certificate at ε = 1 needs σ = 2.5 and the head falls to chance.
"""

from __future__ import annotations

import copy
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from torch import nn

from dememo import forget, models
from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo.training import accuracy
from dememo_plugins.unlearners import certified_newton as cn
from dememo_plugins.unlearners.certified_newton import CertifiedNewton

import support.unlearning as kit
from support.unlearners.last_layers import _names, _state

INF = float("inf")


def _head(model: nn.Module) -> torch.Tensor:
    h = models.last_linear(model)
    return torch.cat([h.weight, h.bias[:, None]], 1).detach().double()


def _features(model, data):
    return cn.augmented(models.features(model, data.x), True)


def test_newton_step_lands_near_the_retain_refit_on_digits():
    s = kit.setting("digits", 0)
    unlearner = CertifiedNewton(epsilon=INF)
    out = unlearner.unlearn(copy.deepcopy(s.original), s.task, s.context())
    xr, xf = _features(s.original, s.task.retain), _features(s.original, s.task.forget)
    x, y = torch.cat([xr, xf]), torch.cat([s.task.retain.y, s.task.forget.y])
    full = cn.fit_head(_head(s.original), x, y, unlearner.l2, unlearner.fit_steps)
    star = cn.fit_head(full, xr, s.task.retain.y, unlearner.l2, 500)
    star_error = float(cn.objective_gradient(star, xr, s.task.retain.y, unlearner.l2).norm()) / unlearner.l2
    newton = _head(out)
    assert (newton - star).norm() < 0.1 * (full - star).norm()        # measured 0.0017 vs 0.074
    cert = out.dememo_certificate
    assert cert["sigma"] == 0 and cert["solver"] == "cg"
    assert (newton - star).norm() <= cert["distance_bound"] + star_error  # the bound the noise is calibrated to


def _tiny_setting():
    splits = tiny_splits()
    model = tiny_context(splits, budget=None).train(splits.train)
    return splits, model, tiny_task(splits)


@pytest.mark.reference("unlearner", "certified-newton", source="paper: Guo et al., Certified Data Removal from "
                       "Machine Learning Models, ICML 2020, eq. 4 (θ⁻ = θ + H⁻¹Δ) and Balle & Wang, ICML 2018, Thm. 8")
def test_the_step_is_theta_plus_inverse_retain_hessian_times_forget_gradient():
    """Against an independent computation: autograd's Hessian of the retain objective (dense path)."""
    splits, model, task = _tiny_setting()
    lam = 0.1
    out = CertifiedNewton(epsilon=INF, l2=lam).unlearn(copy.deepcopy(model), task, tiny_context(splits, budget=None))
    xr, xf = _features(model, task.retain), _features(model, task.forget)
    x, y = torch.cat([xr, xf]), torch.cat([task.retain.y, task.forget.y])
    theta = cn.fit_head(_head(model), x, y, lam, 100)
    nr, nf = len(xr), len(xf)

    def retain_objective(t):
        return F.cross_entropy(xr @ t.T, task.retain.y) + lam / 2 * t.pow(2).sum()

    def forget_part(t):
        return (F.cross_entropy(xf @ t.T, task.forget.y, reduction="sum") + nf * lam / 2 * t.pow(2).sum()) / nr

    hess = torch.autograd.functional.hessian(retain_objective, theta).reshape(theta.numel(), theta.numel())
    delta = torch.autograd.functional.jacobian(forget_part, theta).reshape(-1)
    expected = theta + torch.linalg.solve(hess, delta).view_as(theta)
    assert out.dememo_certificate["solver"] == "cholesky"
    assert torch.allclose(_head(out), expected, atol=1e-5)
    # only the head changed
    before, after = _state(model), _state(out)
    head_keys = {k for k in before if k.startswith(_names(model, [models.last_linear(model)]).pop())}
    assert all(torch.equal(before[k], after[k]) for k in before if k not in head_keys)


def test_dense_and_conjugate_gradient_solves_agree():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 21, dtype=torch.float64, generator=g) * 3
    theta = torch.randn(7, 21, dtype=torch.float64, generator=g) * 0.3
    rhs = torch.randn(theta.numel(), dtype=torch.float64, generator=g)
    dense = cn.solve_dense(cn.hessian(theta, x, 0.01), rhs)
    assert torch.allclose(cn.solve_cg(theta, x, 0.01, rhs), dense, rtol=1e-8, atol=1e-10)


def test_noise_grows_as_epsilon_shrinks_and_infinity_is_the_deterministic_newton_step():
    splits, model, task = _tiny_setting()

    def run(epsilon, seed=0):
        ctx = tiny_context(splits, seed=seed, budget=None)
        return CertifiedNewton(epsilon=epsilon).unlearn(copy.deepcopy(model), task, ctx)

    runs = {e: run(e) for e in (0.25, 1.0, 4.0, INF)}
    certs = {e: m.dememo_certificate for e, m in runs.items()}
    sigmas = [certs[e]["sigma"] for e in (0.25, 1.0, 4.0, INF)]
    assert sigmas[0] > sigmas[1] > sigmas[2] > sigmas[3] == 0
    r = certs[INF]["residual_norm"]
    assert all(c["residual_norm"] == r for c in certs.values())  # the noise comes after the residual
    for e in (0.25, 1.0, 4.0):
        assert certs[e]["sigma"] == pytest.approx(cn.noise_multiplier(e, 1e-5) * r / 0.1)
        noise = (_head(runs[e]) - _head(runs[INF])).flatten()
        assert noise.std().item() == pytest.approx(certs[e]["sigma"], rel=0.35)  # 99 Gaussian draws
    assert torch.equal(_head(run(INF, seed=1)), _head(runs[INF]))     # no randomness without noise
    assert torch.equal(_head(run(1.0, seed=0)), _head(runs[1.0]))     # seeded
    assert not torch.equal(_head(run(1.0, seed=1)), _head(runs[1.0]))


def test_certificate_is_logged(caplog):
    splits, model, task = _tiny_setting()
    with caplog.at_level(logging.INFO, logger="dememo"):
        out = CertifiedNewton().unlearn(copy.deepcopy(model), task, tiny_context(splits, budget=None))
    cert = out.dememo_certificate
    assert {"epsilon", "delta", "sigma", "residual_norm", "distance_bound", "noise_multiplier"} <= set(cert)
    assert cert["n_forget"] == len(task.forget) and cert["n_retain"] == len(task.retain)
    assert any("certified-newton" in r.getMessage() and "σ=" in r.getMessage() for r in caplog.records)


def test_small_epsilon_costs_accuracy_on_digits():
    s = kit.setting("digits", 0)
    default = CertifiedNewton().unlearn(copy.deepcopy(s.original), s.task, s.context())
    strict = CertifiedNewton(epsilon=0.1).unlearn(copy.deepcopy(s.original), s.task, s.context())
    base = accuracy(s.original, s.splits.test)
    assert accuracy(default, s.splits.test) > base - 0.1   # measured 0.91 vs 0.97
    assert accuracy(strict, s.splits.test) < base - 0.3    # measured 0.27: σ 0.28 per weight


def test_a_whole_class_is_removed_by_the_step_but_certifying_it_costs_far_more_noise():
    s = kit.setting("digits", 0)
    train = s.splits.train
    mask = forget.class_mask(train.y, (0,), train.num_classes, "digits")
    task = forget.split(train, mask, {"kind": "class", "classes": [0]}, 0, s.splits.val)
    step = CertifiedNewton(epsilon=INF).unlearn(copy.deepcopy(s.original), task, s.context())
    assert accuracy(step, task.forget) < 0.1    # measured 0.02 (original 1.0)
    assert accuracy(step, task.retain) > 0.95   # measured 0.999
    random = CertifiedNewton(epsilon=INF).unlearn(copy.deepcopy(s.original), s.task, s.context())
    # measured residual 0.068 against 9.0e-4 for 10 % random forgetting: σ at any ε scales with it
    assert step.dememo_certificate["residual_norm"] > 20 * random.dememo_certificate["residual_norm"]


def _privacy_profile(c: float, epsilon: float) -> float:
    """δ of the Gaussian mechanism with σ/Δ = c at ε (Balle and Wang 2018, Thm. 8), via scipy."""
    return norm.cdf(1 / (2 * c) - epsilon * c) - math.exp(epsilon) * norm.cdf(-1 / (2 * c) - epsilon * c)


@settings(max_examples=40, deadline=None)
@given(epsilon=st.floats(0.05, 20), log_delta=st.floats(-10, -1.5))
def test_noise_multiplier_is_the_tight_analytic_gaussian_calibration(epsilon, log_delta):
    delta = 10**log_delta
    c = cn.noise_multiplier(epsilon, delta)
    assert _privacy_profile(c, epsilon) <= delta * (1 + 1e-6)
    assert _privacy_profile(c * 0.999, epsilon) > delta
    assert cn.noise_multiplier(epsilon * 1.5, delta) < c
    if epsilon < 1:  # the classic calibration is valid there and never tighter
        assert c <= math.sqrt(2 * math.log(1.25 / delta)) / epsilon


@pytest.mark.parametrize("params, match", [
    ({"epsilon": 0.0}, "epsilon"), ({"epsilon": -1.0}, "epsilon"), ({"epsilon": float("nan")}, "epsilon"),
    ({"delta": 0.0}, "delta"), ({"delta": 1.0}, "delta"), ({"l2": 0.0}, "l2"), ({"l2": INF}, "l2"),
    ({"fit_steps": -1}, "fit_steps"),
])
def test_certified_newton_parameter_validation(params, match):
    with pytest.raises(ValueError, match=match):
        CertifiedNewton(**params)


def test_certified_newton_needs_a_linear_head():
    splits = tiny_splits()
    conv_only = nn.Sequential(nn.Conv2d(1, 3, 4), nn.Flatten())
    with pytest.raises(ValueError, match="nn.Linear"):
        CertifiedNewton().unlearn(conv_only, tiny_task(splits), tiny_context(splits, budget=None))
