"""The depth of dememorization (``depth``) and the (q, η) certificate on the forget set.

Measured on digits, class 0 forgotten (quick suite recipe, seed 0, recovery on the whole 36-image
validation split, 60 epochs): the original reads depth 0; gradient ascent, RURK and SSD (tuned) have forget
accuracy 0 but come back to ≥ 0.9 of the original's at η = 0.5 (0.87 already at η = 0.25); the retrain, which
never saw class 0, needs η = 1 to learn it from the validation split's four images of the class. Gaussian
noise up to σ = 0.1 brings nothing back for any of them.
"""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dememo import plugins
from dememo.evaluation import Evaluation
from dememo.plan.planner import Planner
from dememo.plan.suite import ForgetSpec, load_suite
from dememo.training import accuracy
from dememo_plugins.metrics.certified_learnability import CertifiedLearnability
from dememo_plugins.metrics.depth import ETA_CAP, SIGMA_CAP, Depth, first_reaching
from tests.unlearning_kit import setting

# --- the rule -----------------------------------------------------------------------------------------------

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


# --- on digits, class 0 -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def class0():
    s = setting("digits", 0, "class")
    suite = load_suite("quick")
    planner = Planner(plugins.get_registry(), suite)
    models = {"original": s.original, "retrain": s.retrained}
    for name in ("gradient-ascent", "rurk"):
        configured, _ = planner.unlearners_for(suite.dataset("digits"), ForgetSpec("class", classes=(0,)), name)[0]
        models[name] = configured.obj.unlearn(copy.deepcopy(s.original), s.given(configured.obj), s.context())
    depth = Depth(recovery_fraction=1.0, etas=(0.25, 0.5, 1.0, 4.0), sigmas=(0.03, 0.1), draws=8)

    def measure(model, metric=depth):
        ev = Evaluation(model=model, splits=s.splits, track="unlearning", task=s.task,
                        references=lambda n: {"original": s.original, "retrained": s.retrained}[n])
        return metric.compute(ev, s.context("depth"))

    return s, models, {k: measure(m) for k, m in models.items()}, measure


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


def test_the_certificate_reads_the_forget_set_on_the_unlearning_track(class0):
    """(q, η) certificate of forget accuracy: the retrain is certified to stay near 0 within η, the original
    is not; the bound is never below the empirical q-quantile it extends."""
    _, models, _, measure = class0
    cert = CertifiedLearnability(sigma=0.05, eta=0.0125, draws=100)
    original, retrain = measure(models["original"], cert), measure(models["retrain"], cert)
    assert retrain["cert_acc"] <= 0.05 and original["cert_acc"] >= 0.9
    for v in (original, retrain):
        assert v["cert_acc"] >= v["q_acc"]


# --- through the harness ------------------------------------------------------------------------------------

def test_depth_in_a_run_starts_from_each_cells_own_accuracy(tiny_suite, tmp_path):
    """End to end (tiny suite, digits, 5-epoch recipe): on every cell the curve's η = 0 and σ = 0 points are
    exactly the accuracy the cell reports for the same data — clean test accuracy on the unlearnability
    track, forget accuracy on the unlearning track — and the depth is the first grid radius reaching the
    recorded target."""
    from conftest import bench, load

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
