"""What issue 2 says the default suite must show, asserted on a real run of ``quick`` (one seed).

Margins were set from measured values with room for seed-to-seed variation; the measured figures are
in the README.
"""

from __future__ import annotations

import statistics

import pytest

pytestmark = pytest.mark.slow


def metric(results, column, track, dataset, method, attack="none", forget="random-10%"):
    """Mean of ``column`` over seeds; on the unlearning track for one forget set (default random 10 %)."""
    vals = [c["metrics"][column] for c in results["cells"]
            if c["track"] == track and c["dataset"] == dataset and c["method"] == method and c["attack"] == attack
            and c.get("forget") in (None, forget)]
    assert vals, f"no {track}/{dataset}/{method}@{attack} cell"
    return statistics.fmean(vals)


def methods(results, track, dataset, prefix):
    return sorted({c["method"] for c in results["cells"] if c["track"] == track and c["dataset"] == dataset
                   and c["method"].startswith(prefix)})


def test_every_cell_of_the_default_suite_succeeds(quick_results):
    failed = [(c["method"], c["attack"], c["error"]["message"]) for c in quick_results["cells"] if c["status"] != "ok"]
    assert not failed


def test_em_at_least_halves_clean_accuracy_on_noisy_shapes(quick_results):
    clean = metric(quick_results, "test_acc", "unlearnability", "noisy-shapes", "none")
    em = metric(quick_results, "test_acc", "unlearnability", "noisy-shapes", "em(mode=sample)")
    assert clean > 0.8
    assert em <= 0.5 * clean


def test_sample_wise_random_noise_stays_near_clean(quick_results):
    for dataset in ("noisy-shapes", "digits"):
        clean = metric(quick_results, "test_acc", "unlearnability", dataset, "none")
        noisy = metric(quick_results, "test_acc", "unlearnability", dataset, "random-noise(mode=sample)")
        assert noisy >= clean - 0.06


def test_em_learns_its_shortcut_perfectly(quick_results):
    # the poisoned training set is fitted while the clean test set is not: a shortcut, not a failure to train
    train = metric(quick_results, "train_acc", "unlearnability", "noisy-shapes", "em(mode=sample)")
    assert train > 0.95


@pytest.mark.parametrize("dataset", ["digits", "noisy-shapes"])
def test_retrain_forgets_to_the_level_of_unseen_data(quick_results, dataset):
    forget = metric(quick_results, "forget_acc", "unlearning", dataset, "retrain")
    test = metric(quick_results, "test_acc", "unlearning", dataset, "retrain")
    assert abs(forget - test) <= 0.08


@pytest.mark.parametrize("dataset", ["digits", "noisy-shapes"])
def test_original_model_knows_its_forget_set(quick_results, dataset):
    assert metric(quick_results, "forget_acc", "unlearning", dataset, "original") >= 0.93


@pytest.mark.parametrize("dataset", ["digits", "noisy-shapes"])
def test_tuned_gradient_ascent_lowers_the_forgotten_class_accuracy(quick_results, dataset):
    """With the tuned rate, on class 0 (seed 0: digits 1.0 → 0.0, noisy-shapes 0.97 → 0.72). On random 10 %
    the tuned rate is one that barely moves the model (the smallest validation gap: the original is already
    close to retrain there), so the direction is asserted where there is something to forget."""
    (ga,) = methods(quick_results, "unlearning", dataset, "gradient-ascent")
    original = metric(quick_results, "forget_acc", "unlearning", dataset, "original", forget="class-0")
    assert metric(quick_results, "forget_acc", "unlearning", dataset, ga, forget="class-0") <= original - 0.1


@pytest.mark.parametrize("dataset", ["digits", "noisy-shapes"])
def test_retrain_has_zero_gap_to_itself(quick_results, dataset):
    assert metric(quick_results, "avg_gap", "unlearning", dataset, "retrain") == 0.0


@pytest.mark.parametrize("track, column", [("unlearnability", "test_acc"), ("unlearning", "test_acc")])
@pytest.mark.parametrize("dataset", ["digits", "noisy-shapes"])
def test_weight_noise_degrades_accuracy_monotonically_on_average(quick_results, track, column, dataset):
    cells = [c for c in quick_results["cells"] if c["track"] == track and c["dataset"] == dataset
             and c.get("forget") in (None, "random-10%")]  # model-stage attacks run on the random forget set
    sigmas = sorted({c["params"]["attack"]["params"]["sigma"] for c in cells if c["attack"].startswith("weight-noise")})
    assert len(sigmas) >= 3
    curve = [statistics.fmean(c["metrics"][column] for c in cells if c["attack"] == "none")]
    for sigma in sigmas:
        curve.append(statistics.fmean(c["metrics"][column] for c in cells if c["attack"].startswith("weight-noise")
                                      and c["params"]["attack"]["params"]["sigma"] == sigma))
    assert all(b <= a + 0.01 for a, b in zip(curve, curve[1:])), curve
    assert curve[-1] < curve[0] - 0.1, curve


def test_tap_poisons_noisy_shapes_below_chance_level_of_clean(quick_results):
    clean = metric(quick_results, "test_acc", "unlearnability", "noisy-shapes", "none")
    tap = metric(quick_results, "test_acc", "unlearnability", "noisy-shapes", "tap")
    assert tap <= 0.25 * clean, "measured 0.05 (3 seeds of the full run: see the README)"


def test_weight_recovery_brings_back_accuracy_hidden_by_em_but_adds_little_to_clean(quick_results):
    """Shallow unlearnability (PUE / SoK): a bounded move in weight space (η = 1, ~7 % of ‖θ̂‖) on 100
    clean images recovers much of what EM removed, while the clean model has nothing to recover."""
    em = "em(mode=sample)"
    before = metric(quick_results, "test_acc", "unlearnability", "noisy-shapes", em)
    after = metric(quick_results, "test_acc", "unlearnability", "noisy-shapes", em, attack="weight-recovery")
    clean = metric(quick_results, "test_acc", "unlearnability", "noisy-shapes", "none")
    clean_after = metric(quick_results, "test_acc", "unlearnability", "noisy-shapes", "none", attack="weight-recovery")
    assert after >= before + 0.15
    assert abs(clean_after - clean) <= 0.05
