"""The ``eu-k`` unlearner (plugins/dememo_plugins/unlearners/eu_k.py): behaviour tests and reference checks.

Reference checks of EU-k and Boundary Expanding: what each method's definition says the result may depend
on (EU-k) and the objective it trains (Boundary Expanding), transcribed independently here.

eu-k, cf-k and certified-newton: invariants, the Newton step's accuracy, the certificate, errors.

- eu-k (k = 2, the recipe's 30 epochs): avg gap 0.010 against the original's 0.028 (forget accuracy 0.98,
  retrain 0.94); cf-k (k = 2, lr 0.01, 10 epochs) 0.026, finetune 0.026. Every parameter and buffer
  outside the last k layers is bit-identical, BatchNorm running statistics in the frozen prefix included.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from dememo import models
from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo_plugins.architectures.small_cnn import SmallCNN
from dememo_plugins.unlearners._last_k import last_k_layers
from dememo_plugins.unlearners.cf_k import CfK
from dememo_plugins.unlearners.eu_k import EuK

from support.unlearners.last_layers import _trained


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [v.detach().clone() for v in model.state_dict().values()]


@pytest.mark.reference("unlearner", "eu-k", source="shash42/Evaluating-Inexact-Unlearning:src/methods.py (EU-k: "
                       "re-initialise the last k layers, train them on D_r with the rest frozen)")
def test_eu_k_is_exact_for_its_tail_the_old_tail_and_the_forget_set_change_nothing():
    """EU-k's claim is exact unlearning of the last k layers: given the frozen prefix, the result is a fresh
    tail trained on D_r. So it must not depend on the tail's trained weights (they are re-drawn) nor on D_f,
    and the prefix must come back bit-identical. Fine-tuning the tail instead (CF-k) breaks the first."""
    splits = tiny_splits()
    task = tiny_task(splits, forget_fraction=0.2, seed=0)
    model = tiny_context(splits, budget=None).train(splits.train)
    out = EuK(k=1).unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=4, budget=None))

    scrambled = copy.deepcopy(model)
    head = list(scrambled.modules())[-1]
    with torch.no_grad():
        head.weight.normal_(generator=torch.Generator().manual_seed(7))
        head.bias.normal_(generator=torch.Generator().manual_seed(8))
    other_forget = task.__class__(retain=task.retain, val=task.val,
                                  forget=task.forget.with_images(torch.rand_like(task.forget.x), "other"))
    again = EuK(k=1).unlearn(scrambled, other_forget, tiny_context(splits, seed=4, budget=None))
    assert all(torch.equal(a, b) for a, b in zip(_weights(out), _weights(again), strict=True))
    # the prefix is the original's, bit for bit; the tail moved
    before, after = model.state_dict(), out.state_dict()
    head_keys = [k for k in before if k.startswith("net.3.")]  # TinyMLP: net.1 linear, ReLU, net.3 the head
    assert head_keys and all(torch.equal(before[k], after[k]) for k in before if k not in head_keys)
    assert all(not torch.equal(before[k], after[k]) for k in head_keys)


def test_eu_k_reinitialises_the_tail_norm_layers_included():
    splits = tiny_splits(shape=(1, 8, 8))
    model = _trained(SmallCNN(width=4).build((1, 8, 8), 3), splits)
    original = copy.deepcopy(model)
    # a negligible learning rate leaves the freshly drawn tail as it was drawn
    out = EuK(k=2, epochs=1, lr=1e-12).unlearn(model, tiny_task(splits), tiny_context(splits, budget=None))
    conv, gn, head = last_k_layers(out, 2)
    old_conv, _, old_head = last_k_layers(original, 2)
    for new, old in ((conv, old_conv), (head, old_head)):
        bound = 1 / math.sqrt(new.weight[0].numel())
        assert new.weight.abs().max() <= bound and not torch.allclose(new.weight, old.weight)
    assert torch.allclose(gn.weight, torch.ones_like(gn.weight)) and torch.allclose(gn.bias, torch.zeros_like(gn.bias))
    # CF-k with the same settings does not re-initialise anything
    kept = CfK(k=2, epochs=1, lr=1e-12).unlearn(copy.deepcopy(original), tiny_task(splits),
                                                tiny_context(splits, budget=None))
    assert torch.allclose(last_k_layers(kept, 2)[0].weight, old_conv.weight, atol=1e-9)


def test_eu_k_draws_from_the_seed():
    splits = tiny_splits()
    model = tiny_context(splits, budget=None).train(splits.train)
    task = tiny_task(splits)
    a, b, c = (EuK(k=1, epochs=2).unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=s, budget=None))
               for s in (0, 0, 1))
    head = [models.last_linear(m).weight for m in (a, b, c)]
    assert torch.equal(head[0], head[1]) and not torch.equal(head[0], head[2])
