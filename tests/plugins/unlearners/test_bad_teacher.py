"""The ``bad-teacher`` unlearner (plugins/dememo_plugins/unlearners/bad_teacher.py): behaviour tests and reference checks.

Reference checks of the distillation unlearners (bad-teacher, Spotter): the objective each plugin hands to
the training loop, evaluated on a batch, against the released / published loss transcribed here as a plain
per-sample NumPy loop. The loss is captured by replacing ``Context.fit`` for the duration of one call, so the
check sees exactly the function the plugin trains with.

scrub, bad-teacher and rurk on the embedded data: direction and size, the mechanisms, invariants, errors.

- digits, class 0 forgotten (the original classifies all of class 0): scrub at lr 0.1 with grad_clip 0.5,
  5 epochs, leaves forget accuracy 0.0 and test accuracy 0.861 (the retrained model: 0.0 / 0.861); at the
  published lr 5e-4 forget accuracy stays 1.0. bad-teacher at lr 1e-3 for 3 epochs: forget 0.0, retain 0.94;
  at its published 1 epoch of lr 1e-4 (2 Adam steps here) forget stays 1.0.
- bad-teacher on noisy-shapes random 10 % (lr 1e-3, 3 epochs): mean true-class probability on the forget
  set 0.76 → 0.46 and on test 0.74 → 0.45, forget accuracy within 2 samples: on random forgetting it
  lowers confidence everywhere instead of forgetting.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dememo.context import Context
from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo.training import accuracy
from dememo_plugins.unlearners.bad_teacher import BadTeacher

import support.unlearning as kit
from support.unlearners.distillation import _kl, _softmax
from support.unlearners.distillation_reference import _class_task, _same, _state, _tiny, _unlearn


def _capture_fit(monkeypatch) -> dict:
    calls: dict = {}

    def fake_fit(self, model, data, **kw):
        calls.update(kw, data=data, model=model)

    monkeypatch.setattr(Context, "fit", fake_fit)
    return calls


@pytest.mark.reference("unlearner", "bad-teacher", source="vikram2000b/bad-teaching-unlearning:unlearn.py "
                       "(UnlearnerLoss: KL(l·softmax(T_d/T) + (1 − l)·softmax(T_s/T) ‖ softmax(S/T)), l = 1 on forget)")
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_bad_teacher_objective_is_the_released_unlearner_loss(monkeypatch, temperature):
    splits = tiny_splits()
    original = tiny_context(splits, budget=None).train(splits.train)
    task = tiny_task(splits, forget_fraction=0.2, seed=0)
    calls = _capture_fit(monkeypatch)
    ctx = tiny_context(splits, seed=5, budget=None)
    BadTeacher(temperature=temperature, retain_fraction=0.5).unlearn(copy.deepcopy(original), task, ctx)
    data, loss = calls["data"], calls["loss"]
    n_forget = len(task.forget)
    incompetent = tiny_context(splits, seed=5, budget=None).derive("bad-teacher:incompetent").new_model()
    student = copy.deepcopy(original)
    with torch.no_grad():  # move the student away from the teacher so the divergence is not zero
        for p in student.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    rows = torch.arange(len(data))
    x = data.x[rows]
    with torch.no_grad():
        got = float(loss(student.eval(), x, data.y[rows]))
        s, ts, td = (m.eval()(x).double().numpy() / temperature for m in (student, original, incompetent))
    expected = np.mean([_kl(_softmax(td[i]) if i < n_forget else _softmax(ts[i]), _softmax(s[i]))
                        for i in range(len(x))])
    assert got == pytest.approx(expected, rel=1e-4)
    # the unlearning set is the whole forget set followed by retain_fraction of the retain set
    assert len(data) == n_forget + int(np.ceil(0.5 * len(task.retain)))
    assert torch.equal(data.x[:n_forget], task.forget.x)


def test_bad_teacher_forgets_a_class_on_digits():
    s = kit.setting("digits", 0)
    task = _class_task(s)
    out = _unlearn(BadTeacher(lr=1e-3, epochs=3), s, task)
    assert accuracy(out, task.forget) <= 0.05
    assert accuracy(out, task.retain) >= 0.9
    published = _unlearn(BadTeacher(), s, task)
    assert accuracy(published, task.forget) >= 0.95


def test_bad_teacher_on_random_forgetting_lowers_confidence_not_accuracy():
    s = kit.setting("noisy-shapes", 0)
    out = _unlearn(BadTeacher(lr=1e-3, epochs=3), s)
    ctx = s.context()

    def confidence(model, data):
        return float(ctx.predict(model, data.x).softmax(1).gather(1, data.y[:, None]).mean())

    for data in (s.task.forget, s.splits.test):
        assert confidence(out, data) < confidence(s.original, data) - 0.15
    assert abs(accuracy(out, s.task.forget) - accuracy(s.original, s.task.forget)) <= 0.04


def test_bad_teacher_draws_the_retain_part_and_the_bad_teacher_from_the_seed():
    splits, task, model = _tiny()
    bt = BadTeacher(retain_fraction=0.5)
    parts = [bt.unlearning_set(task, tiny_context(splits, seed=k, budget=None)) for k in (0, 0, 1)]
    assert len(parts[0]) == len(task.forget) + -(-len(task.retain) // 2)
    assert torch.equal(parts[0].index, parts[1].index) and not torch.equal(parts[0].index, parts[2].index)
    assert torch.equal(parts[0].index[: len(task.forget)], task.forget.index)
    runs = [bt.unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=k, budget=None)) for k in (0, 1)]
    assert not _same(_state(runs[0]), _state(runs[1]))


def test_bad_teacher_with_no_retain_part_uses_forget_only():
    splits, task, model = _tiny()
    data = BadTeacher(retain_fraction=0.0).unlearning_set(task, tiny_context(splits, budget=None))
    assert torch.equal(data.index, task.forget.index)
