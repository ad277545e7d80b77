"""Reference checks for the weight-space probes (issue 17): ``weight-recovery``'s projections, the ``depth``
metric with its fresh-initialisation control, ``weight-noise`` and ``certified-learnability``.

Each check transcribes the formula of the authors' released code (PUE, Wang et al., NDSS 2025: repository
``NeuralSec/certified-data-learnability``) or the definition of the metric into a small loop here, written
independently of the plugin, and compares the plugin with it on tiny models and data.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import binom, norm

from dememo import AttackData
from dememo.testing import evaluation_for, tiny_class_task, tiny_context, tiny_splits
from dememo.training import accuracy
from dememo_plugins.attacks import weight_recovery as wr
from dememo_plugins.attacks.weight_noise import WeightNoise
from dememo_plugins.attacks.weight_recovery import WeightRecovery
from dememo_plugins.metrics import certified_learnability as cl
from dememo_plugins.metrics import depth as depth_module
from dememo_plugins.metrics.depth import ETA_CAP, Depth

PROPERTY = settings(max_examples=30, deadline=None)


@pytest.fixture(scope="module")
def tiny():
    splits = tiny_splits()
    return splits, tiny_context(splits, budget=None).train(splits.train)


def moved_copy(model: torch.nn.Module, scale: float, seed: int) -> torch.nn.Module:
    """``model`` with every parameter moved by ``scale``·N(0, 1) (a seeded random point around it)."""
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return out


def released_projection(params: dict[str, torch.Tensor], origin: dict[str, torch.Tensor], eta: float,
                        ball: bool) -> dict[str, torch.Tensor]:
    """PUE's ``project`` (NeuralSec/certified-data-learnability, trainer.py), transcribed: the ℓ2 norm of the
    difference over all parameters concatenated (``l2_of_param_diff``), then every tensor's difference
    scaled by η / norm, unconditionally (the sphere). ``ball=True``: the paper's constraint ‖θ − θ̂‖₂ ≤ η,
    i.e. the same scaling only when the norm exceeds η. Computed in float64, tensor by tensor."""
    total = 0.0
    for name in params:
        total += float(((params[name].double() - origin[name].double()) ** 2).sum())
    norm_ = math.sqrt(total)
    factor = eta / norm_ if (not ball or norm_ > eta) else 1.0
    return {name: origin[name].double() + (params[name].double() - origin[name].double()) * factor for name in params}


def delta_norm(model: torch.nn.Module, origin: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(((p.detach().double() - origin[n].double()) ** 2).sum()) for n, p in model.named_parameters()))


def delta_norm_of(params: dict[str, torch.Tensor], origin: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(((p.double() - origin[n].double()) ** 2).sum()) for n, p in params.items()))


# --- weight-recovery: the released sphere projection and the ball ---------------------------------------------


@pytest.mark.reference("attack", "weight-recovery", source="NeuralSec/certified-data-learnability:trainer.py")
@PROPERTY
@given(eta=st.floats(1e-3, 5.0), scale=st.floats(1e-3, 3.0), seed=st.integers(0, 2**16))
def test_sphere_and_ball_projections_match_the_released_formula(tiny, eta, scale, seed):
    """``project_to_sphere_`` is the released ``project`` (trainer.py: υ = (θ − θ̂)·η/‖θ − θ̂‖₂ per tensor, the
    norm from ``l2_of_param_diff`` over all ``named_parameters``), and ``project_`` its ball counterpart,
    on random points inside and outside the ball; after the sphere ‖θ − θ̂‖₂ = η, the ball keeps interior
    points exactly."""
    _, model = tiny
    origin = {n: p.clone() for n, p in wr.float_parameters(model).items()}
    for project, ball in ((wr.project_to_sphere_, False), (wr.project_, True)):
        moved = moved_copy(model, scale, seed)
        before = {n: p.detach().clone() for n, p in moved.named_parameters()}
        expected = released_projection(before, origin, eta, ball)
        reported = project(moved, origin, eta)
        assert reported == pytest.approx(delta_norm_of(before, origin), rel=1e-6)
        for n, p in moved.named_parameters():
            assert torch.allclose(p.double(), expected[n], rtol=0, atol=1e-6), n
        after = delta_norm(moved, origin)
        if not ball:
            assert after == pytest.approx(eta, rel=1e-5, abs=1e-6)
        elif reported <= eta:
            assert all(torch.equal(p, before[n]) for n, p in moved.named_parameters())  # interior: untouched
        else:
            assert after == pytest.approx(eta, rel=1e-5, abs=1e-6)


@settings(max_examples=15, deadline=None)
@given(eta=st.floats(1e-2, 5.0), fraction=st.floats(0.05, 0.95))
def test_the_sphere_pushes_interior_points_out_along_their_direction(tiny, eta, fraction):
    _, model = tiny
    origin = {n: p.clone() for n, p in wr.float_parameters(model).items()}
    moved = moved_copy(model, 1.0, 0)
    wr.project_to_sphere_(moved, origin, eta * fraction)  # a point strictly inside the η-ball
    direction = torch.cat([(p - origin[n]).flatten() for n, p in moved.named_parameters()])
    inside = copy.deepcopy(moved)
    assert wr.project_(inside, origin, eta) == pytest.approx(eta * fraction, rel=1e-5, abs=1e-6)
    assert delta_norm(inside, origin) == pytest.approx(eta * fraction, rel=1e-5, abs=1e-6)  # the ball leaves it
    wr.project_to_sphere_(moved, origin, eta)
    after = torch.cat([(p - origin[n]).flatten() for n, p in moved.named_parameters()])
    assert delta_norm(moved, origin) == pytest.approx(eta, rel=1e-5, abs=1e-6)
    assert torch.nn.functional.cosine_similarity(after, direction, dim=0) > 1 - 1e-5


def test_sphere_projection_at_the_anchor_leaves_the_weights(tiny):
    _, model = tiny
    origin = {n: p.clone() for n, p in wr.float_parameters(model).items()}
    same = copy.deepcopy(model)
    assert wr.project_to_sphere_(same, origin, 1.0) == 0.0
    assert all(torch.equal(p, origin[n]) for n, p in same.named_parameters())


def test_projected_sgd_on_the_sphere_ends_every_step_at_radius_eta(tiny):
    """With ``projection="sphere"`` every SGD step ends on ‖θ − θ̂‖₂ = η (the released attack), also where
    the ball's iterates stay inside: a few small steps cannot travel η = 2, so the ball's last iterate is
    interior while the sphere's is at distance 2."""
    splits, model = tiny
    steps, original = [], wr.project_to_sphere_

    def checked(m, anchor, radius):
        before = original(m, anchor, radius)
        steps.append(float(wr.squared_distance(wr.float_parameters(m), anchor).sqrt()))
        return before

    kw = dict(eta=2.0, epochs=2, lr=0.01, fraction=1.0, keep_best=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(wr, "project_to_sphere_", checked)
        sphere = WeightRecovery(projection="sphere", **kw).attack(copy.deepcopy(model), AttackData(splits),
                                                                  tiny_context(splits, budget=None))
    ball = WeightRecovery(**kw).attack(copy.deepcopy(model), AttackData(splits), tiny_context(splits, budget=None))
    origin = wr.float_parameters(model)
    assert len(steps) == 2 * 2 and all(s == pytest.approx(2.0, rel=1e-5) for s in steps)  # 40 images, batch 32
    assert delta_norm(sphere, origin) == pytest.approx(2.0, rel=1e-5)
    assert delta_norm(ball, origin) < 1.0


def test_projection_option_is_checked_and_defaults_to_the_ball():
    assert WeightRecovery().projection == "ball"
    with pytest.raises(ValueError, match="projection must be 'ball'"):
        WeightRecovery(projection="shell")


# --- depth: η* against a brute-force sweep, and the fresh-initialisation control ------------------------------


def brute_force_depth(ev, ctx, etas, target, start):
    """η* by definition (SoK arXiv 2605.11592, shallow dememorization; the η sweep of PUE's README for
    ``recover.py``): run the bounded recovery at *every* grid radius from ``start`` (no early stop), with
    the recovery images of ``ctx.derive("depth:recovery")``, and return the first radius whose hidden
    accuracy reaches the target (``cap + 1`` if none), with the full curve."""
    data = ev.splits.test if ev.track == "unlearnability" else ev.task.forget
    curve = [accuracy(start, data)]
    for eta in etas:
        rec = WeightRecovery(eta=eta, fraction=1.0).attack(start, AttackData(ev.splits, ev.task),
                                                           ctx.derive("depth:recovery"))
        curve.append(accuracy(rec, data))
    for eta, acc in zip((0.0, *etas), curve):
        if acc >= target - 1e-12:
            return eta, curve
    return ETA_CAP + 1, curve


ETAS = (0.25, 0.5, 1.0, 2.0, 4.0)


@pytest.fixture(scope="module")
def clean_depth(tiny):
    splits, model = tiny
    ev = evaluation_for(model, splits, "unlearnability")
    depth_module._CONTROL_CURVES.clear()
    out = Depth(recovery_fraction=1.0, sigmas=(0.1,), draws=4).compute(ev, tiny_context(splits, budget=None))
    return ev, out


@pytest.mark.reference("metric", "depth", source="paper: SoK: Unlearnability and Unlearning for Model Dememorization "
                                                  "(arXiv 2605.11592), shallow dememorization (depth η*)")
def test_depth_and_its_control_equal_a_brute_force_sweep(tiny, clean_depth):
    """On a model trained on clean data (unlearnability track: hidden accuracy = clean test accuracy, level =
    the clean reference's, floor 0) η* and the control η*₀ are the first grid radius at which the brute-force
    sweep reaches T = 0 + 0.9·(level − 0); the control starts from the fresh model seeded by
    ``ctx.derive("depth:control")``. The clean model reads 0 (nothing hidden) and the control reaches the
    target at some radius > 0 within the grid (measured 2.0: the 40 validation images teach the task)."""
    splits, model = tiny
    ev, out = clean_depth
    level = accuracy(ev.reference("clean"), splits.test)
    target = 0.0 + 0.9 * (level - 0.0)
    assert out["depth_target"] == pytest.approx(target, abs=1e-12)
    ctx = tiny_context(splits, budget=None)
    expected, _ = brute_force_depth(ev, ctx, ETAS, target, model)
    assert out["depth_eta"] == expected == 0.0
    fresh = ctx.derive("depth:control").new_model()
    expected_control, curve = brute_force_depth(ev, ctx, ETAS, target, fresh)
    assert out["depth_eta_control"] == expected_control
    assert 0.0 < out["depth_eta_control"] <= ETA_CAP
    # the control curve is the brute-force one up to the first radius reaching the target, then carried
    reached = (0.0, *ETAS).index(expected_control)
    got = out["depth_eta_control_curve"]
    assert got.x == (0.0, *ETAS) and got.x_name == "eta"
    assert list(got.y[: reached + 1]) == pytest.approx(curve[: reached + 1], abs=1e-12)
    assert all(y == got.y[reached] for y in got.y[reached:])
    assert got.y[0] < target  # a fresh model is far from the task


@pytest.mark.reference("metric", "depth", source="paper: SoK: Unlearnability and Unlearning for Model Dememorization "
                                                  "(arXiv 2605.11592), shallow dememorization (depth η*)")
def test_depth_of_a_damaged_model_equals_the_brute_force_radius(tiny):
    """A model moved away from its trained weights (every parameter + 0.2·N(0, 1), seed 3: test accuracy
    0.67) hides accuracy that a small recovery brings back: η* must be the brute-force sweep's first radius
    reaching the target, and above 0 (measured 0.25)."""
    splits, model = tiny
    damaged = moved_copy(model, 0.2, 3)
    ev = evaluation_for(damaged, splits, "unlearnability")
    depth_module._CONTROL_CURVES.clear()
    out = Depth(recovery_fraction=1.0, sigmas=(0.1,), draws=4).compute(ev, tiny_context(splits, budget=None))
    target = 0.9 * accuracy(ev.reference("clean"), splits.test)
    expected, curve = brute_force_depth(ev, tiny_context(splits, budget=None), ETAS, target, damaged)
    assert curve[0] < target and 0.0 < expected <= ETA_CAP
    assert out["depth_eta"] == expected


def test_depth_declares_and_returns_the_control_columns(clean_depth):
    _, out = clean_depth
    for key in ("depth_eta_control", "depth_eta_control_curve"):
        column = Depth.columns[key]
        assert key in out and column.direction == "info" and len(column.description) > 40
    assert Depth.columns["depth_eta_control"].cap == ETA_CAP and Depth.columns["depth_eta_control"].unit == "number"
    assert set(out) == set(Depth.columns)


def test_the_control_does_not_depend_on_the_model_and_stops_at_the_first_radius(tiny, monkeypatch):
    """The control is a property of the data, seed and target, not of the model under evaluation: a
    damaged model gets the same control value as the clean one. Its search runs the recovery only up to
    the first radius reaching the target, and once per process for the same inputs (the memo)."""
    splits, model = tiny
    calls = []
    original = WeightRecovery.attack

    def counted(self, m, data, ctx):
        calls.append(self.eta)
        return original(self, m, data, ctx)

    monkeypatch.setattr(WeightRecovery, "attack", counted)
    depth = Depth(recovery_fraction=1.0, sigmas=(0.1,), draws=4)
    depth_module._CONTROL_CURVES.clear()
    ev = evaluation_for(model, splits, "unlearnability")
    first = depth.compute(ev, tiny_context(splits, budget=None))
    control = first["depth_eta_control"]
    assert calls == [e for e in ETAS if e <= control]  # the clean model's own search stops at η = 0
    calls.clear()
    again = depth.compute(ev, tiny_context(splits, budget=None))
    assert calls == [] and again == first  # the memo: no search, same values
    depth_module._CONTROL_CURVES.clear()
    fresh = depth.compute(ev, tiny_context(splits, budget=None))
    assert fresh == first  # and the memo changes nothing but run time
    damaged = moved_copy(model, 0.5, 3)
    ev_damaged = evaluation_for(damaged, splits, "unlearnability")
    other = depth.compute(ev_damaged, tiny_context(splits, budget=None))
    assert other["depth_eta_control"] == control
    assert other["hidden_acc"] < first["hidden_acc"]


def test_control_on_a_class_forget_set(tiny):
    """Unlearning track, class 0 forgotten, model = the original (nothing forgotten): η* = 0, and the control
    column is present and is the brute-force value (target 0.9 of the way from the retrain's forget
    accuracy to the original's)."""
    splits, model = tiny
    task = tiny_class_task(splits, (0,))
    ev = evaluation_for(model, splits, "unlearning", task=task)
    out = Depth(recovery_fraction=1.0, sigmas=(0.1,), draws=4).compute(ev, tiny_context(splits, budget=None))
    level, floor = (accuracy(ev.reference(n), task.forget) for n in ("original", "retrained"))
    target = floor + 0.9 * (level - floor)
    assert out["depth_target"] == pytest.approx(target, abs=1e-12)
    ctx = tiny_context(splits, budget=None)
    expected, _ = brute_force_depth(ev, ctx, ETAS, target, ctx.derive("depth:control").new_model())
    assert out["depth_eta_control"] == expected
    assert out["hidden_acc"] >= target and out["depth_eta"] == 0.0  # the original hides nothing


# --- weight-noise and the certificate -------------------------------------------------------------------------


@pytest.mark.reference("attack", "weight-noise", source="NeuralSec/certified-data-learnability:certify.py")
def test_weight_noise_is_sigma_times_a_standard_normal_on_every_parameter(tiny):
    """certify.py's perturbation, transcribed: every ``named_parameters`` tensor gets σ·N(0, 1) (``randn_like``),
    independently per draw; buffers are not touched. The plugin's offsets must have mean 0 and standard
    deviation σ on every tensor and across draws (checked on 64 draws × 643 weights), be different per draw
    and identical under the seed."""
    splits, model = tiny
    sigma, draws = 0.05, 64
    out = WeightNoise(sigma=sigma, draws=draws).attack(copy.deepcopy(model), AttackData(splits),
                                                     tiny_context(splits, budget=None))
    assert len(out) == draws
    base = {n: p.detach() for n, p in model.named_parameters()}
    offsets = torch.stack([torch.cat([(p.detach() - base[n]).flatten() for n, p in m.named_parameters()]) for m in out])
    n = offsets.numel()
    assert abs(float(offsets.mean())) < 4 * sigma / math.sqrt(n)
    assert float(offsets.std()) == pytest.approx(sigma, rel=0.03)
    for name, p in model.named_parameters():  # each tensor, not only the concatenation
        per = torch.stack([dict(m.named_parameters())[name].detach() - p.detach() for m in out])
        assert float(per.std()) == pytest.approx(sigma, rel=0.25), name
    corr = torch.corrcoef(offsets[:8])
    assert float((corr - torch.eye(8)).abs().max()) < 0.2  # independent draws
    for m in out:
        assert all(torch.equal(a, b) for a, b in zip(m.buffers(), model.buffers()))
    again = WeightNoise(sigma=sigma, draws=draws).attack(copy.deepcopy(model), AttackData(splits),
                                                       tiny_context(splits, budget=None))
    assert all(torch.equal(a, b) for x, y in zip(out, again) for a, b in zip(x.parameters(), y.parameters()))


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
@PROPERTY
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
