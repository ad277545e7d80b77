"""The ``relearn-time`` metric (plugins/dememo_plugins/metrics/relearn_time.py): behaviour tests and reference checks.

mia-entropy, tow / tow-mia, relearn-time and the relearn / prototype-relearn attacks on the embedded data.

- relearn-time (lr 0.003, batch 32): digits random-10 % original 0, retrain 14 epochs, tuned finetune and
  gradient ascent 2; with lr 1e-6 nothing reaches the target within 30 epochs (31, rendered "> 30").
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dememo.board.leaderboard import _fmt
from dememo.data import Splits, Task
from dememo.evaluation import Evaluation
from dememo.testing import tiny_context
from dememo.training import Recipe
from dememo_plugins.metrics.relearn_time import CAP, RelearnTime

import support.unlearning as kit
from support.attacks.relearning import compute, same, state, unlearn
from support.metrics.unlearning import data


def relearn_setting():
    g = torch.Generator().manual_seed(0)
    k, n = 3, 24
    forget = data(torch.rand(n, 6, generator=g), torch.arange(n) % k, k, "rt-forget")
    splits = Splits(forget, forget, forget)
    torch.manual_seed(0)
    original = nn.Sequential(nn.Flatten(), nn.Linear(6, k))
    opt = torch.optim.Adam(original.parameters(), lr=0.1)
    for _ in range(300):  # a confident original: low forget loss
        opt.zero_grad()
        F.cross_entropy(original(forget.x), forget.y).backward()
        opt.step()
    unlearned = copy.deepcopy(original)
    with torch.no_grad():
        unlearned[1].weight.mul_(-0.3)
    return splits, Task(forget, forget, forget), original, unlearned


def loop_relearn_time(model, original, forget, lr, tolerance=0.05, cap=CAP) -> int:
    """Golatkar et al. / RURK relearn time: fine-tune on the forget set with plain cross-entropy (here one
    full-batch SGD step per epoch, Nesterov momentum 0.9, constant lr, no weight decay) and count the
    epochs until the forget loss is ≤ (1 + tolerance) × the original's; cap + 1 if never within the cap."""
    def loss(m):
        with torch.no_grad():
            return float(F.cross_entropy(m(forget.x), forget.y))

    target = (1 + tolerance) * loss(original)
    model = copy.deepcopy(model)
    if loss(model) <= target:
        return 0
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=0.0)
    for epoch in range(1, cap + 1):
        opt.zero_grad()
        F.cross_entropy(model(forget.x), forget.y).backward()
        opt.step()
        if loss(model) <= target:
            return epoch
    return cap + 1


@pytest.mark.reference("metric", "relearn-time",
                       source="paper: Golatkar et al., Eternal Sunshine of the Spotless Net (CVPR 2020), relearn time; "
                              "as reported in Hsu et al. (arXiv 2601.22359), tolerance 0.05, cap 30")
def test_relearn_time_counts_plain_ce_fine_tuning_epochs_to_the_originals_loss():
    """Relearn time = the number of fine-tuning epochs on the forget set until its cross-entropy is within 5 %
    of the original model's (REFERENCES.md; the loss compared is the plain cross-entropy, so the fine-tuning
    minimises it too, whatever label smoothing the suite's training recipe uses). Full batches make the
    plugin's loop and the transcription take the same steps."""
    splits, task, original, unlearned = relearn_setting()
    smoothing = Recipe(epochs=8, batch_size=32, lr=0.05, label_smoothing=0.3)
    ctx = tiny_context(splits, budget=None, recipe=smoothing)
    ev = Evaluation(model=unlearned, splits=splits, track="unlearning", task=task,
                    references={"original": original}.__getitem__)
    for lr in (0.5, 1.0):  # measured: 18 and 12 epochs
        expected = loop_relearn_time(unlearned, original, task.forget, lr)
        assert 2 <= expected <= CAP
        assert RelearnTime(lr=lr, batch_size=len(task.forget)).compute(ev, ctx)["relearn_time"] == float(expected)
    assert RelearnTime(lr=1e-7, batch_size=len(task.forget)).compute(ev, ctx)["relearn_time"] == float(CAP + 1)
    ev0 = Evaluation(model=original, splits=splits, track="unlearning", task=task,
                     references={"original": original}.__getitem__)
    assert RelearnTime().compute(ev0, ctx)["relearn_time"] == 0.0


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
