"""The ``prototype-relearn`` attack (plugins/dememo_plugins/attacks/prototype_relearn.py): behaviour tests and reference checks.

mia-entropy, tow / tow-mia, relearn-time and the relearn / prototype-relearn attacks on the embedded data.

- prototype-relearn on digits class 0 after the tuned gradient ascent: α = 1 forget accuracy 0.00 → 0.98,
  α = 0.5 → 0.55; the retrain at α = 0.5 stays 0.00. α = 0 returns bit-identical weights.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dememo.data import Splits, Task
from dememo.families import AttackData
from dememo.testing import tiny_class_task, tiny_context, tiny_splits, tiny_task
from dememo.training import accuracy
from dememo_plugins.attacks.prototype_relearn import PrototypeRelearn

import support.unlearning as kit
from support.attacks.relearning import attack, same, state, unlearn
from support.metrics.unlearning import data


@pytest.mark.reference("attack", "prototype-relearn", source="Seung-B/Spotter-Unlearning:proto_utils.py")
@settings(max_examples=10, deadline=None)
@given(alpha=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_prototype_relearn_unit_scale_is_the_released_cosine_update(alpha, seed):
    """``update_fc_with_prototypes`` (metric "cosine", the released default): p_c = mean penultimate feature of
    the attacker's images of class c, normalised to unit ℓ2 norm; w_c ← α·p_c + (1 − α)·w_c and
    b_c ← α·0 + (1 − α)·b_c; every other row untouched. dememo's ``scale="unit"`` is this update (its default
    ``"calibrated"`` rescales the row and sets a bias: a documented deviation). All images of the class are
    the shots here, so the draw does not matter."""
    g = torch.Generator().manual_seed(seed)
    k = 3
    train = data(torch.rand(30, 8, generator=g), torch.arange(30) % k, k, f"pr-{seed}")
    forget = train.subset((train.y == 1).nonzero().flatten(), "class-1")
    retain = train.subset((train.y != 1).nonzero().flatten(), "rest")
    splits = Splits(train, train, train)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, k))
    attack = PrototypeRelearn(alpha=alpha, shots=100, shots_from="forget", scale="unit")
    out = attack.attack(model, AttackData(splits, Task(retain, forget, retain)), tiny_context(splits, budget=None))
    w, b = model[3].weight.detach().double(), model[3].bias.detach().double()
    w1, b1 = model[1].weight.detach().double(), model[1].bias.detach().double()
    feats = []
    for x in forget.x.flatten(1).double():
        feats.append([max(0.0, float(w1[j] @ x + b1[j])) for j in range(5)])
    proto = [sum(f[j] for f in feats) / len(feats) for j in range(5)]
    length = math.sqrt(sum(v * v for v in proto))
    proto = [v / length for v in proto]
    for c in range(k):
        row, bias = out[3].weight[c].detach().double().tolist(), float(out[3].bias[c].detach())
        if c == 1:
            assert row == pytest.approx([alpha * proto[j] + (1 - alpha) * float(w[c, j]) for j in range(5)], abs=1e-6)
            assert bias == pytest.approx((1 - alpha) * float(b[c]), abs=1e-6)
        else:
            assert row == w[c].tolist() and bias == float(b[c])
    for name in ("1.weight", "1.bias"):
        assert torch.equal(out.state_dict()[name], model.state_dict()[name])


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
