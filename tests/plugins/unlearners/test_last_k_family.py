"""eu-k and cf-k together and their shared ``_last_k`` layer selection: what stays bit-identical, direction on digits, parameters.

eu-k, cf-k and certified-newton: invariants, the Newton step's accuracy, the certificate, errors.

Measured (digits, seed 0, random 10 %, quick recipe; the numbers the assertions leave room around):

- eu-k (k = 2, the recipe's 30 epochs): avg gap 0.010 against the original's 0.028 (forget accuracy 0.98,
  retrain 0.94); cf-k (k = 2, lr 0.01, 10 epochs) 0.026, finetune 0.026. Every parameter and buffer
  outside the last k layers is bit-identical, BatchNorm running statistics in the frozen prefix included.
- certified-newton (λ = 0.1): the Newton step lands 0.0017 from the head refitted on the retain features
  alone, against 0.074 for the head fitted on all training features (ratio 0.02); the exact residual
  r = 9.0e-4 gives the distance bound r/λ = 0.009 ≥ 0.0017. At ε = 1, δ = 1e-5 σ = 0.034 and test
  accuracy 0.91–0.96 (original 0.97); at ε = 0.1 σ = 0.28 and test accuracy 0.27. Removing a whole class
  (class 0): the step alone brings forget accuracy to 0.02 with retain 0.999, but its residual is 75×
  larger, so a certificate at ε = 1 needs σ = 2.5 and the head falls to chance.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dememo import models
from dememo.data import Task
from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo_plugins.architectures.mlp import MLP
from dememo_plugins.architectures.small_cnn import SmallCNN
from dememo_plugins.unlearners._last_k import last_k_layers
from dememo_plugins.unlearners.cf_k import CfK
from dememo_plugins.unlearners.eu_k import EuK

import support.unlearning as kit
from support.unlearners.last_layers import _names, _state, _trained


class _Untouchable:
    """Stands in for the forget set: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the forget set was read ({name})")

    def __len__(self):
        raise AssertionError("the forget set was read (len)")


def _bn_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


def test_last_k_layers_counts_weight_layers_and_takes_the_norms_between():
    cnn = SmallCNN(width=4).build((3, 16, 16), 5)
    convs = [m for m in cnn if isinstance(m, nn.Conv2d)]
    norms = [m for m in cnn if isinstance(m, nn.GroupNorm)]
    head = models.last_linear(cnn)
    assert last_k_layers(cnn, 1) == [head]
    assert last_k_layers(cnn, 2) == [convs[2], norms[2], head]
    assert last_k_layers(cnn, 3) == [convs[1], norms[1], convs[2], norms[2], head]  # norms[0] stays frozen
    assert last_k_layers(cnn, 4) == models.layers(cnn)
    mlp = MLP(hidden=8).build((1, 8, 8), 10)
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    assert last_k_layers(mlp, 2) == linears[1:]
    with pytest.raises(ValueError, match="only 4 convolution/linear layers"):
        last_k_layers(cnn, 5)


@pytest.mark.parametrize("make", [lambda: EuK(k=1, epochs=2), lambda: EuK(k=2, epochs=2), lambda: CfK(k=1, epochs=2),
                                  lambda: CfK(k=2, epochs=2)], ids=["eu-1", "eu-2", "cf-1", "cf-2"])
def test_all_but_the_last_k_layers_stay_bit_identical_and_forget_is_never_read(make):
    unlearner = make()
    assert type(unlearner).reads_forget is False
    splits = tiny_splits(shape=(1, 6, 6))
    model = _trained(_bn_model(), splits)
    task = tiny_task(splits)
    before = _state(model)
    tail = _names(model, last_k_layers(model, unlearner.k))
    out = unlearner.unlearn(model, Task(task.retain, _Untouchable(), task.val), tiny_context(splits, budget=None))
    after = _state(out)
    frozen = [k for k in before if k.rsplit(".", 1)[0] not in tail]
    moved = [k for k in before if k.rsplit(".", 1)[0] in tail and k.endswith(("weight", "bias"))]
    assert frozen and moved
    assert all(torch.equal(before[k], after[k]) for k in frozen)  # BatchNorm running statistics included
    assert all(not torch.equal(before[k], after[k]) for k in moved)
    assert all(p.requires_grad for p in out.parameters())  # freezing is undone: later attacks train everything


class _Identity:
    """The original model, measured like an unlearner."""

    reads_forget = False

    def unlearn(self, model, task, ctx):
        return model


def test_eu_k_moves_digits_toward_retrain_and_cf_k_keeps_accuracy():
    original = kit.measure(_Identity(), "digits")
    eu = kit.measure(EuK(), "digits")
    cf = kit.measure(CfK(), "digits")
    assert eu["avg_gap"] < original["avg_gap"] - 0.01     # measured 0.010 vs 0.028
    assert eu["forget_acc"] <= original["forget_acc"]     # measured 0.98 vs 1.0
    assert cf["test_acc"] >= original["test_acc"] - 0.01  # measured 0.972 vs 0.968
    assert cf["avg_gap"] <= original["avg_gap"] + 0.005   # measured 0.026 vs 0.028


@pytest.mark.parametrize("cls, params, match", [
    (EuK, {"k": 0}, "k"), (CfK, {"k": -1}, "k"), (CfK, {"k": 1.5}, "integer"), (EuK, {"k": True}, "integer"),
    (EuK, {"lr": 0.0}, "lr"), (EuK, {"epochs": 0}, "epochs"), (CfK, {"lr": -0.1}, "lr"), (CfK, {"epochs": 0}, "epochs"),
])
def test_last_k_parameter_validation(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(**params)
