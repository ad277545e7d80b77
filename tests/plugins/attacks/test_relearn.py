"""The ``relearn`` attack (plugins/dememo_plugins/attacks/relearn.py): behaviour tests and reference checks.

mia-entropy, tow / tow-mia, relearn-time and the relearn / prototype-relearn attacks on the embedded data.

- relearn (default: 5 forget shots, 3 SGD steps at lr 0.001): noisy-shapes random-10 % after gradient ascent
  (lr 0.03, 1 epoch) forget accuracy 0.713 → 0.900, the retrain 0.893 → 0.913; digits class 0 after the
  tuned gradient ascent (lr 0.1, 5 epochs) 0.000 → 0.871 with retain accuracy 0.955 → 0.998, the retrain
  stays at 0.000. Which 5 shots are drawn matters: over 30 draws the noisy-shapes retrain reads forget / test
  accuracy 0.82-0.92 / 0.84-0.93 after the attack (``draws`` averages several). Retain-set relearning (10 passes at lr 0.005) on digits random after gradient ascent
  0.704 → 0.991, the retrain 0.944 → 0.944.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dememo.data import Splits, Task
from dememo.families import AttackData
from dememo.testing import tiny_context
from dememo.training import Recipe, accuracy
from dememo_plugins.attacks.relearn import Relearn

import support.unlearning as kit
from support.attacks.relearning import attack, same, state, unlearn
from support.metrics.unlearning import data


@pytest.mark.reference("attack", "relearn", source="shoaibahmed/vision_relearning:vision_unlearner.py")
@pytest.mark.parametrize("epochs", [1.0, 2.0])
def test_retain_set_relearning_is_plain_ce_fine_tuning_for_training_set_passes(epochs):
    """Siddiqui et al. (arXiv 2505.22310), released ``vision_unlearner.py``: relearning fine-tunes the unlearned
    model on the relearn set with ``train_utils.train_direct`` (plain ``CrossEntropyLoss``), for
    ``relearning_steps = len(train_loader) × relearning_epochs`` steps, the loader being over the *whole*
    training set, whatever the relearn set; constant lr, no weight decay. Transcribed as SGD (the suite's
    optimiser, Nesterov momentum) at the default lr (recipe lr / 10): |retain| = 12 fits one batch of 16, and
    |retain| + |forget| = 20 makes 2 steps per pass, so ``epochs`` passes are 2·epochs full-batch steps on the
    retain set. The recipe's label smoothing (0.3 here) is not applied: the code's loss has none."""
    g = torch.Generator().manual_seed(1)
    train = data(torch.rand(20, 6, generator=g), torch.arange(20) % 3, 3, "rl-train")
    retain, forget = train.subset(torch.arange(12), "retain"), train.subset(torch.arange(12, 20), "forget")
    splits = Splits(train, train, train)
    recipe = Recipe(epochs=8, batch_size=16, lr=0.05, momentum=0.9, label_smoothing=0.3)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    attacked = Relearn(source="retain", epochs=epochs).attack(
        model, AttackData(splits, Task(retain, forget, retain)), tiny_context(splits, budget=None, recipe=recipe))
    expected = copy.deepcopy(model)
    opt = torch.optim.SGD(expected.parameters(), lr=0.05 / 10, momentum=0.9, nesterov=True, weight_decay=0.0)
    for _ in range(int(2 * epochs)):
        opt.zero_grad()
        F.cross_entropy(expected(retain.x), retain.y).backward()
        opt.step()
    for (name, a), b in zip(attacked.state_dict().items(), expected.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert not torch.equal(attacked.state_dict()["3.weight"], model.state_dict()["3.weight"])


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
