"""mia-entropy, tow / tow-mia, relearn-time and the relearn / prototype-relearn attacks on the embedded data.

Measured (seed 0, 2 CPU cores, quick-suite recipes; the assertions leave room around these numbers):

- tow on digits random-10 %: the retrain reads exactly 1 (tow and tow-mia); gradient ascent at lr 0.1 for 5
  epochs (forget / retain / test accuracy 0.70 / 0.72 / 0.73 against the retrain's 0.94 / 1.00 / 0.97)
  reads tow 0.42.
- mia-entropy (share of forget predicted member): noisy-shapes random-10 % original 0.573, retrain 0.500
  (seeds 1, 2: 0.58 / 0.46 and 0.51 / 0.49, so the random-forget margin is small); digits class 0 original
  0.95, retrain 0.13.
- relearn-time (lr 0.003, batch 32): digits random-10 % original 0, retrain 14 epochs, tuned finetune and
  gradient ascent 2; with lr 1e-6 nothing reaches the target within 30 epochs (31, rendered "> 30").
- relearn (default: 5 forget shots, 3 SGD steps at lr 0.001): noisy-shapes random-10 % after gradient ascent
  (lr 0.03, 1 epoch) forget accuracy 0.713 → 0.900, the retrain 0.893 → 0.913; digits class 0 after the
  tuned gradient ascent (lr 0.1, 5 epochs) 0.000 → 0.871 with retain accuracy 0.955 → 0.998, the retrain
  stays at 0.000. Which 5 shots are drawn matters: over 30 draws the noisy-shapes retrain reads forget / test
  accuracy 0.82-0.92 / 0.84-0.93 after the attack (``draws`` averages several). Retain-set relearning (10 passes at lr 0.005) on digits random after gradient ascent
  0.704 → 0.991, the retrain 0.944 → 0.944.
- prototype-relearn on digits class 0 after the tuned gradient ascent: α = 1 forget accuracy 0.00 → 0.98,
  α = 0.5 → 0.55; the retrain at α = 0.5 stays 0.00. α = 0 returns bit-identical weights.
"""

from __future__ import annotations

import copy

import pytest
import torch
import unlearning_kit as kit
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo import plugins
from dememo.board.leaderboard import _fmt
from dememo.evaluation import Evaluation
from dememo.families import AttackData
from dememo.testing import tiny_class_task, tiny_context, tiny_splits, tiny_task
from dememo.training import accuracy
from dememo_plugins.attacks.prototype_relearn import PrototypeRelearn
from dememo_plugins.attacks.relearn import Relearn
from dememo_plugins.metrics.mia_entropy import MIAEntropy
from dememo_plugins.metrics.relearn_time import CAP, RelearnTime
from dememo_plugins.metrics.tow import ToW, ToWMIA
from dememo_plugins.unlearners.gradient_ascent import GradientAscent


def evaluation(model, s) -> Evaluation:
    """An Evaluation like the runner's: references are the setting's models, other metrics are computed with
    their default parameters (recursively, on the model or on a reference)."""
    refs = {"original": s.original, "retrained": s.retrained}

    def metric(name, on="model"):
        target = model if on == "model" else refs[on]
        return plugins.get_registry().get("metric", name)().compute(evaluation(target, s), s.context("metric"))

    return Evaluation(model=model, splits=s.splits, track="unlearning", task=s.task, train_data=s.splits.train,
                      references=refs.__getitem__, metric=metric)


def compute(metric, model, s) -> float:
    (value,) = metric.compute(evaluation(model, s), s.context("metric")).values()
    return value


def unlearn(s, **params):
    return GradientAscent(**params).unlearn(copy.deepcopy(s.original), s.task, s.context())


def attack(attacker, model, s, purpose="attack"):
    return attacker.attack(model, AttackData(s.splits, s.task), s.context(purpose))


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- tow / tow-mia ---------------------------------------------------------------------------------------

def test_tow_is_one_for_the_retrain_and_drops_after_harsh_gradient_ascent():
    s = kit.setting("digits", 0, "random")
    assert compute(ToW(), s.retrained, s) == 1.0 and compute(ToWMIA(), s.retrained, s) == 1.0
    ga = unlearn(s, lr=0.1, epochs=5)
    tow, tow_mia = compute(ToW(), ga, s), compute(ToWMIA(), ga, s)
    assert 0 <= tow < 0.6 and 0 <= tow_mia < 0.9  # measured 0.42 and 0.60
    # the product of the three (1 − |gap|) factors, read from the unlearning-accuracy metric
    acc = evaluation(ga, s).metric("unlearning-accuracy")
    ref = evaluation(s.retrained, s).metric("unlearning-accuracy")
    expected = 1.0
    for key in ("forget_acc", "retain_acc", "test_acc"):
        expected *= 1 - abs(acc[key] - ref[key])
    assert tow == pytest.approx(expected)


# -- mia-entropy -----------------------------------------------------------------------------------------

def test_mia_entropy_calls_more_of_the_forget_set_member_on_the_original_than_on_the_retrain():
    s = kit.setting("noisy-shapes", 0, "random")
    original, retrained = compute(MIAEntropy(), s.original, s), compute(MIAEntropy(), s.retrained, s)
    assert original - retrained >= 0.04  # measured 0.573 vs 0.500
    d = kit.setting("digits", 0, "class")
    assert compute(MIAEntropy(), d.original, d) > 0.8 > 0.3 > compute(MIAEntropy(), d.retrained, d)  # 0.95 / 0.13


def test_mia_entropy_is_a_share_and_deterministic():
    s = kit.setting("digits", 0, "random")
    values = [compute(MIAEntropy(), s.original, s) for _ in range(2)]
    assert values[0] == values[1] and 0 <= values[0] <= 1


# -- relearn-time ----------------------------------------------------------------------------------------

def test_relearn_time_original_is_zero_retrain_needs_several_epochs():
    s = kit.setting("digits", 0, "random")
    assert compute(RelearnTime(), s.original, s) == 0.0
    retrain = compute(RelearnTime(), s.retrained, s)
    assert 5 <= retrain <= CAP  # measured 14
    ga = unlearn(s, lr=0.1, epochs=1)  # the tuned quick-suite setting: nearly the original
    assert compute(RelearnTime(), ga, s) < retrain  # measured 2


def test_relearn_time_censors_at_cap_plus_one_and_leaves_the_model_alone():
    s = kit.setting("digits", 0, "random")
    before = state(s.retrained)
    assert compute(RelearnTime(lr=1e-6), s.retrained, s) == CAP + 1
    assert same(before, state(s.retrained))
    column = RelearnTime.columns["relearn_time"]
    assert column.cap == CAP and column.unit == "epochs"
    assert _fmt(float(CAP + 1), 0.0, column.unit, column.cap) == f"> {CAP}"


def test_relearn_time_is_deterministic():
    s = kit.setting("digits", 0, "random")
    assert compute(RelearnTime(), s.retrained, s) == compute(RelearnTime(), s.retrained, s)


# -- relearn ---------------------------------------------------------------------------------------------

def test_few_shot_relearning_brings_back_what_gradient_ascent_hid_but_not_what_retraining_removed():
    s = kit.setting("noisy-shapes", 0, "random")
    ga = unlearn(s, lr=0.03, epochs=1)
    before = accuracy(ga, s.task.forget)
    after = accuracy(attack(Relearn(), ga, s), s.task.forget)
    assert before < 0.78 and after - before >= 0.12  # measured 0.713 → 0.900 (5 shots ≤ 3.3 pp of it)
    retrain_before = accuracy(s.retrained, s.task.forget)
    assert abs(accuracy(attack(Relearn(), s.retrained, s), s.task.forget) - retrain_before) <= 0.05  # 0.893 → 0.913


def test_relearning_a_forgotten_class_from_five_shots():
    s = kit.setting("digits", 0, "class")
    ga = unlearn(s, lr=0.1, epochs=5)
    assert accuracy(ga, s.task.forget) == 0.0
    attacked = attack(Relearn(), ga, s)
    assert accuracy(attacked, s.task.forget) >= 0.6 and accuracy(attacked, s.task.retain) >= 0.9  # 0.871 / 0.998
    assert accuracy(attack(Relearn(), s.retrained, s), s.task.forget) <= 0.05  # 0.000


def test_retain_set_relearning_and_the_retrain():
    s = kit.setting("digits", 0, "random")
    ga = unlearn(s, lr=0.1, epochs=5)
    assert accuracy(ga, s.task.forget) < 0.8  # 0.704
    relearn = Relearn(source="retain", epochs=3)
    assert accuracy(attack(relearn, ga, s), s.task.forget) >= 0.95  # 0.981
    assert accuracy(attack(relearn, s.retrained, s), s.task.forget) == pytest.approx(accuracy(s.retrained, s.task.forget), abs=0.02)


def test_relearn_is_deterministic_and_does_not_touch_its_input():
    s = kit.setting("digits", 0, "class")
    before = state(s.retrained)
    for relearn in (Relearn(), Relearn(source="retain+forget", epochs=0.5)):
        a, b = attack(relearn, s.retrained, s), attack(relearn, s.retrained, s)
        assert same(state(a), state(b)) and not same(state(a), before)
    assert same(before, state(s.retrained))
    other = attack(Relearn(), s.retrained, s, purpose="another-seed")
    assert not same(state(other), state(attack(Relearn(), s.retrained, s)))
    draws = attack(Relearn(draws=3), s.retrained, s)
    assert isinstance(draws, list) and len(draws) == 3
    assert same(state(draws[0]), state(attack(Relearn(), s.retrained, s)))  # the first draw is the single run
    assert not same(state(draws[1]), state(draws[2]))


# -- prototype-relearn -----------------------------------------------------------------------------------

def test_prototype_relearn_restores_a_class_forgotten_by_gradient_ascent():
    s = kit.setting("digits", 0, "class")
    ga = unlearn(s, lr=0.1, epochs=5)
    assert accuracy(ga, s.task.forget) == 0.0
    full = attack(PrototypeRelearn(alpha=1.0), ga, s)
    assert accuracy(full, s.task.forget) >= 0.9 and accuracy(full, s.task.retain) >= 0.7  # 0.98 / 0.81
    assert accuracy(attack(PrototypeRelearn(alpha=0.5), ga, s), s.task.forget) >= 0.3  # 0.55
    assert accuracy(attack(PrototypeRelearn(alpha=0.5), s.retrained, s), s.task.forget) <= 0.1  # 0.00


def test_prototype_relearn_alpha_zero_is_the_identity():
    s = kit.setting("digits", 0, "class")
    out = attack(PrototypeRelearn(alpha=0.0), s.retrained, s)
    assert out is not s.retrained and same(state(out), state(s.retrained))


_TINY = tiny_splits()
_TINY_MODEL = tiny_context(_TINY).train(_TINY.train)


@settings(max_examples=15, deadline=None)
@given(alpha=st.floats(0.05, 1.0), classes=st.sets(st.integers(0, 2), min_size=1, max_size=2),
       scale=st.sampled_from(["calibrated", "rows", "unit"]), shots_from=st.sampled_from(["val", "forget"]))
def test_prototype_relearn_changes_only_the_forgotten_rows(alpha, classes, scale, shots_from):
    task = tiny_class_task(_TINY, tuple(sorted(classes)))
    before = state(_TINY_MODEL)
    out = PrototypeRelearn(alpha=alpha, scale=scale, shots_from=shots_from).attack(
        _TINY_MODEL, AttackData(_TINY, task), tiny_context(_TINY))
    after = state(out)
    assert same(before, state(_TINY_MODEL))
    head = "net.3"  # TinyMLP's last Linear
    rows = sorted(classes)
    kept = [c for c in range(3) if c not in classes]
    for key in before:
        if key.startswith(head):
            assert torch.equal(before[key][kept], after[key][kept])
            assert not torch.equal(before[key][rows], after[key][rows]) or key.endswith("bias")
        else:
            assert torch.equal(before[key], after[key])


def test_prototype_relearn_is_deterministic_under_a_seed():
    s = kit.setting("digits", 0, "class")
    a, b = (attack(PrototypeRelearn(alpha=0.8), s.retrained, s) for _ in range(2))
    assert same(state(a), state(b))


def test_prototype_relearn_needs_images_of_the_forgotten_class():
    splits = tiny_splits()
    task = tiny_task(splits)
    no_val_class = type(splits)(splits.train, splits.val.subset((splits.val.y != 0).nonzero().flatten()), splits.test)
    with pytest.raises(ValueError, match="no image of forgotten class 0"):
        PrototypeRelearn().attack(_TINY_MODEL, AttackData(no_val_class, task), tiny_context(splits))


# -- parameters ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, params, message", [
    (MIAEntropy, {"C": 0.0}, r"^C \(.*\) must be > 0"),
    (RelearnTime, {"tolerance": -0.1}, "tolerance"),
    (RelearnTime, {"lr": 0.0}, "lr must be > 0"),
    (RelearnTime, {"batch_size": 0}, "batch_size"),
    (Relearn, {"source": "test"}, "source must be one of"),
    (Relearn, {"source": "forget", "shots": 0}, r"^shots \(.*\) must be ≥ 1"),
    (Relearn, {"epochs": 0.0}, r"^epochs \(.*\) must be > 0"),
    (Relearn, {"lr": -1.0}, "lr must be > 0"),
    (Relearn, {"draws": 0}, "draws must be ≥ 1"),
    (PrototypeRelearn, {"alpha": 1.5}, r"^alpha \(.*\) must be in \[0, 1\]"),
    (PrototypeRelearn, {"shots": 0}, r"^shots \(.*\) must be ≥ 1"),
    (PrototypeRelearn, {"shots_from": "test"}, "shots_from"),
    (PrototypeRelearn, {"scale": "huge"}, "scale must be one of"),
])
def test_invalid_parameters_are_rejected_with_a_clear_message(cls, params, message):
    with pytest.raises(ValueError, match=message):
        cls(**params)


def test_declarations_match_where_the_harness_runs_them():
    assert PrototypeRelearn.forget_kinds == ("class",) and PrototypeRelearn.tracks == ("unlearning",)
    assert Relearn.tracks == ("unlearning",) and RelearnTime.after_model_attack is False
    assert RelearnTime.needs == ("original",) and ToW.needs == ToWMIA.needs == ("retrained",)
    assert set(ToWMIA.uses) == {"unlearning-accuracy", "mia-efficacy"}
    assert MIAEntropy.columns["mia_entropy"].reference == "retrain"
