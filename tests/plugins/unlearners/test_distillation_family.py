"""scrub, bad-teacher and rurk together: parameter errors, search spaces, determinism and leaving the task untouched.

scrub, bad-teacher and rurk on the embedded data: direction and size, the mechanisms, invariants, errors.

Measured (seed 0, 2 CPU cores, quick-suite recipes; the numbers the assertions leave room around):

- digits, class 0 forgotten (the original classifies all of class 0): scrub at lr 0.1 with grad_clip 0.5,
  5 epochs, leaves forget accuracy 0.0 and test accuracy 0.861 (the retrained model: 0.0 / 0.861); at the
  published lr 5e-4 forget accuracy stays 1.0. bad-teacher at lr 1e-3 for 3 epochs: forget 0.0, retain 0.94;
  at its published 1 epoch of lr 1e-4 (2 Adam steps here) forget stays 1.0.
- scrub's max-step: after one min-step at lr 0.03 (clip 0.5) KL(teacher ‖ student) on the forget set is
  0.0065; the following max-step raises it to 1.41 and forget accuracy falls from 1.0 to 0.92 on digits.
  The very first max-step starts at KL = 0, where the gradient vanishes.
- noisy-shapes, random 10 %: the original classifies 0.920 of the forget set, the retrained model 0.893.
  scrub (lr 0.1, clip 0.5, 5 epochs) 0.907, test accuracy 0.914 (original 0.914), average gap 0.021
  (original's 0.029); without clipping, lr 0.01 collapses the model to ≈ chance (test 0.23).
- rurk on noisy-shapes (lr 0.03, 2 epochs): λ_f = 0 → forget accuracy 0.953, λ_f = 0.3 → 0.887 (test
  0.912, gap 0.021), λ_f = 1.0 → 0.187 with test accuracy 0.20 (over-aggressive ascent collapses the model).
- bad-teacher on noisy-shapes random 10 % (lr 1e-3, 3 epochs): mean true-class probability on the forget
  set 0.76 → 0.46 and on test 0.74 → 0.45, forget accuracy within 2 samples: on random forgetting it
  lowers confidence everywhere instead of forgetting.
"""

from __future__ import annotations

import copy

import attrs
import pytest
import torch

from dememo.testing import tiny_context
from dememo_plugins.unlearners.bad_teacher import BadTeacher
from dememo_plugins.unlearners.rurk import Rurk
from dememo_plugins.unlearners.scrub import Scrub

from support.unlearners.distillation_reference import _same, _state, _tiny


@pytest.mark.parametrize("cls, params, match", [
    (Scrub, {"lr": 0}, "lr"), (Scrub, {"epochs": 0}, "epochs"), (Scrub, {"msteps": 4, "epochs": 3}, "msteps"),
    (Scrub, {"kd_T": 0}, "kd_T"), (Scrub, {"gamma": 0, "alpha": 0}, "gamma"), (Scrub, {"alpha": -1}, "alpha"),
    (Scrub, {"optimizer": "rmsprop"}, "optimizer"), (Scrub, {"forget_batch_size": 0}, "forget_batch_size"),
    (Scrub, {"grad_clip": 0}, "grad_clip"),
    (BadTeacher, {"lr": -1}, "lr"), (BadTeacher, {"epochs": 0}, "epochs"),
    (BadTeacher, {"temperature": 0}, "temperature"),
    (BadTeacher, {"retain_fraction": 1.5}, "retain_fraction"), (BadTeacher, {"batch_size": 0}, "batch_size"),
    (Rurk, {"lr": 0}, "lr"), (Rurk, {"epochs": 0}, "epochs"), (Rurk, {"tau": -0.1}, "tau"),
    (Rurk, {"lambda_f": -1}, "lambda"), (Rurk, {"lambda_a": -1}, "lambda"), (Rurk, {"grad_clip": 0}, "grad_clip"),
])
def test_invalid_parameters_are_rejected(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(**params)


@pytest.mark.parametrize("cls", [Scrub, BadTeacher, Rurk])
def test_search_space_is_small_holds_the_defaults_and_builds(cls):
    space = cls.search_space
    size = 1
    for name, values in space.items():
        assert 2 <= len(values) <= 4
        assert getattr(cls(), name) in values
        size *= len(values)
        for v in values:
            cls(**{name: v})
    assert size <= 12


@pytest.mark.parametrize("unlearner", [Scrub(lr=0.05, grad_clip=0.5), BadTeacher(lr=1e-3), Rurk(lambda_a=0.1, tau=0.1)])
def test_deterministic_and_does_not_touch_the_task(unlearner):
    splits, task, model = _tiny()
    before = (task.retain.x.clone(), task.forget.x.clone(), task.retain.y.clone())
    runs = [unlearner.unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=3, budget=None)) for _ in range(2)]
    assert _same(_state(runs[0]), _state(runs[1]))
    assert torch.equal(task.retain.x, before[0]) and torch.equal(task.forget.x, before[1])
    assert torch.equal(task.retain.y, before[2])
    assert attrs.has(type(unlearner))
