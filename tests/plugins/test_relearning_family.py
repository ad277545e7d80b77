"""Parameter checks and declarations of the relearning attacks (relearn, prototype-relearn) and the metrics around them (relearn-time, mia-entropy, tow / tow-mia).

mia-entropy, tow / tow-mia, relearn-time and the relearn / prototype-relearn attacks on the embedded data.

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

import pytest

from dememo_plugins.attacks.prototype_relearn import PrototypeRelearn
from dememo_plugins.attacks.relearn import Relearn
from dememo_plugins.metrics.mia_entropy import MIAEntropy
from dememo_plugins.metrics.relearn_time import RelearnTime
from dememo_plugins.metrics.tow import ToW, ToWMIA


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
