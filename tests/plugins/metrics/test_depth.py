"""The ``depth`` metric (plugins/dememo_plugins/metrics/depth.py): behaviour tests and reference checks.

The depth of dememorization (``depth``) and the (q, η) certificate on the forget set.

Measured on digits, class 0 forgotten (quick suite recipe, seed 0, recovery on the whole 36-image
validation split, 60 epochs): the original reads depth 0; gradient ascent, RURK and SSD (tuned) have forget
accuracy 0 but come back to ≥ 0.9 of the original's at η = 0.5 (0.87 already at η = 0.25); the retrain, which
never saw class 0, needs η = 1 to learn it from the validation split's four images of the class. Gaussian
noise up to σ = 0.1 brings nothing back for any of them.

Reference checks for the weight-space probes (issue 17): ``weight-recovery``'s projections, the ``depth``
metric with its fresh-initialisation control, ``weight-noise`` and ``certified-learnability``.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dememo import AttackData
from dememo.testing import evaluation_for, tiny_class_task, tiny_context
from dememo.training import accuracy
from dememo_plugins.attacks.weight_recovery import WeightRecovery
from dememo_plugins.metrics import depth as depth_module
from dememo_plugins.metrics.depth import ETA_CAP, SIGMA_CAP, Depth, first_reaching

from support.metrics.depth import class0  # noqa: F401 (pytest fixtures, used as arguments)
from support.metrics.weight_space_reference import moved_copy, tiny  # noqa: F401 (pytest fixtures, used as arguments)


def test_first_reaching_examples():
    curve = [(0.0, 0.1), (0.5, 0.6), (1.0, 0.95), (2.0, 0.97)]
    assert first_reaching(curve, 0.9, 4.0) == 1.0
    assert first_reaching(curve, 0.05, 4.0) == 0.0
    assert first_reaching(curve, 0.99, 4.0) == 5.0  # censored: "> 4"
    assert first_reaching([(0.0, math.nan), (1.0, 0.9)], 0.5, 4.0) == 1.0  # NaN never counts


@given(st.lists(st.floats(0, 1), min_size=1, max_size=8), st.floats(0, 1), st.floats(0, 1))
def test_first_reaching_is_the_smallest_radius_and_monotone_in_the_target(ys, t1, t2):
    curve = [(float(i), y) for i, y in enumerate(ys)]
    lo, hi = sorted((t1, t2))
    d = first_reaching(curve, lo, 100.0)
    assert d <= first_reaching(curve, hi, 100.0)
    if d <= len(ys):
        assert ys[int(d)] >= lo - 1e-12 and all(y < lo - 1e-12 for y in ys[: int(d)])
    else:
        assert all(y < lo - 1e-12 for y in ys)


@pytest.mark.parametrize("params, message", [
    ({"etas": [0.5, 2.0]}, "etas must end at 4"),
    ({"etas": [1.0, 0.5, 4.0]}, "etas must be increasing"),
    ({"sigmas": [0.01, 0.2]}, "sigmas must be increasing values in"),
    ({"fraction": 0}, "fraction of the way from floor to level"),
    ({"draws": 0}, "needs draws"),
    ({"recovery_fraction": 0}, "fraction of the validation split"),
])
def test_bad_parameters_are_clear(params, message):
    with pytest.raises(ValueError, match=message):
        Depth(**params)


def test_unperturbed_points_are_the_models_own_forget_accuracy(class0):
    s, models, out, _ = class0
    for name, values in out.items():
        exact = accuracy(models[name], s.task.forget)
        assert values["depth_eta_curve"].y[0] == values["depth_sigma_curve"].y[0] == values["hidden_acc"] == exact
        assert values["depth_eta_curve"].x == (0.0, 0.25, 0.5, 1.0, 4.0) and values["depth_eta_curve"].x_name == "eta"
    assert out["original"]["depth_target"] == pytest.approx(0.9 * out["original"]["hidden_acc"], abs=1e-9)  # floor 0


def test_the_original_hides_nothing_and_the_retrain_is_deepest(class0):
    _, _, out, _ = class0
    assert out["original"]["depth_eta"] == 0.0 and out["original"]["depth_sigma"] == 0.0
    assert out["retrain"]["hidden_acc"] == 0.0 and out["retrain"]["depth_eta"] >= 1.0  # measured 1.0


def test_forgetting_by_gradient_ascent_and_rurk_is_shallower_than_retraining(class0):
    """The SoK's shallow forgetting: forget accuracy 0, yet back within a smaller radius than the retrain's."""
    _, _, out, _ = class0
    for name in ("gradient-ascent", "rurk"):
        assert out[name]["hidden_acc"] <= 0.05
        assert out[name]["depth_eta"] <= 0.5 < out["retrain"]["depth_eta"]  # measured 0.5 vs 1.0


def test_gaussian_noise_brings_nothing_back_here(class0):
    _, _, out, _ = class0
    for name in ("retrain", "gradient-ascent", "rurk"):
        assert out[name]["depth_sigma"] == SIGMA_CAP + 1  # "> 0.1"
        assert max(out[name]["depth_sigma_curve"].y) < 0.2


def test_the_curve_is_carried_forward_once_recovered(class0):
    _, _, out, _ = class0
    curve = out["gradient-ascent"]["depth_eta_curve"]
    reached = curve.x.index(out["gradient-ascent"]["depth_eta"])
    assert all(y == curve.y[reached] for y in curve.y[reached:])
    assert out["retrain"]["depth_eta"] <= ETA_CAP


def test_depth_in_a_run_starts_from_each_cells_own_accuracy(tiny_suite, tmp_path):
    """End to end (tiny suite, digits, 5-epoch recipe): on every cell the curve's η = 0 and σ = 0 points are
    exactly the accuracy the cell reports for the same data — clean test accuracy on the unlearnability
    track, forget accuracy on the unlearning track — and the depth is the first grid radius reaching the
    recorded target."""
    from support import bench, load

    tiny_suite.write_text(tiny_suite.read_text().replace("metric_datasets = { depth = [] }", ""))  # depth on
    proc = bench("--all", "--suite", str(tiny_suite), "--metric", "depth", "--metric", "clean-accuracy",
                 "--metric", "unlearning-accuracy", "--attack", "none", "--poisoner", "none", "--poisoner", "em",
                 "--unlearner", "finetune", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
                 "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = [c for c in load(tmp_path / "out")["cells"] if "depth_eta" in c["metrics"]]
    assert {c["track"] for c in cells} == {"unlearnability", "unlearning"}
    for c in cells:
        m, series = c["metrics"], c["series"]
        own = m["test_acc"] if c["track"] == "unlearnability" else m["forget_acc"]
        assert series["depth_eta_curve"]["y"][0] == series["depth_sigma_curve"]["y"][0] == m["hidden_acc"] == own
        curve = list(zip(series["depth_eta_curve"]["x"], series["depth_eta_curve"]["y"]))
        assert m["depth_eta"] == first_reaching(curve, m["depth_target"], ETA_CAP)


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
