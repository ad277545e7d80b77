"""The ``salun`` unlearner (plugins/dememo_plugins/unlearners/salun.py): behaviour tests and reference checks.

Reference checks (issue 17) for ``ssd``, ``salun`` and ``mia-efficacy``, and for the loss-based unlearners
``finetune``, ``gradient-ascent``, ``neggrad-plus``, ``random-label``, ``l1-sparse``, ``cf-k``, ``scrub`` and
``rurk``: each plugin against a loop transcription, written here independently, of its paper's equation as
the authors' released code computes it.

- salun: OPTML-Group/Unlearn-Saliency, ``Classification/generate_mask.py`` (``save_gradient_ratio``).

random-label, l1-sparse and salun on the embedded data: direction, sensitivity, invariants, errors.

- salun: exactly int(0.5·N) weights salient (N = 14,826 for small-cnn); every other weight bit-identical
  to the original after unlearning with weight decay 5e-4 and Nesterov momentum 0.9; masking only the
  gradient (the public code before its fix) moves them.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.data import Task
from dememo_plugins.unlearners.random_label import RandomLabel, random_label_union
from dememo_plugins.unlearners.salun import SalUn, saliency_mask

import support.unlearning as kit
from support.unlearners.salun import _state, _unlearn
from support.unlearners.trained import _batches, _trained


def released_mask(model, data, ratio, batch_size=256):
    """OPTML-Group/Unlearn-Saliency, Classification/generate_mask.py (since commit b874ee9), transcribed:
    evaluation mode; sum over the loader's batches of ∇(−mean CE); |·|; all tensors concatenated and
    negated, ranked ascending (argsort of argsort); mask = rank < int(N·ratio) (the top fraction)."""
    model = copy.deepcopy(model).eval()
    grads = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for x, y in _batches(data.x, data.y, batch_size):
        model.zero_grad()
        (-F.cross_entropy(model(x), y)).backward()
        for n, p in model.named_parameters():
            grads[n] += p.grad.detach()
    values = -torch.cat([g.abs().reshape(-1) for g in grads.values()])
    ranks = torch.argsort(torch.argsort(values))
    hard = ranks < int(len(values) * ratio)
    out, start = {}, 0
    for n, g in grads.items():
        out[n] = hard[start : start + g.numel()].view(g.shape)
        start += g.numel()
    return out, grads


def _flat_mask(masks):
    return torch.cat([m.reshape(-1) for m in masks.values()])


@pytest.mark.reference("unlearner", "salun", source="OPTML-Group/Unlearn-Saliency:Classification/generate_mask.py")
@pytest.mark.parametrize("ratio", [0.5, 0.3, 0.1])
def test_salun_mask_is_eq3_on_the_forget_gradient_as_released(ratio):
    """SalUn's mask equals the released mask code (global top int(ratio·N) of |∇ forget loss|; N = 643, so
    at 0.5 the size is 321, not round(321.5) = 322), not the mask of the retain gradient, and not the least
    salient fraction that the first releases kept."""
    model, task, _ = _trained(task="random")
    got = SalUn(mask_ratio=ratio).mask(model, task.forget)
    expected, grads = released_mask(model, task.forget, ratio)
    flat, n = _flat_mask(got), _flat_mask(expected).numel()
    assert int(flat.sum()) == int(n * ratio)
    assert torch.equal(flat, _flat_mask(expected))
    retain_mask, _ = released_mask(model, task.retain, ratio)
    assert not torch.equal(flat, _flat_mask(retain_mask))
    magnitude = torch.cat([g.abs().reshape(-1) for g in grads.values()])
    assert float(magnitude[flat].min()) >= float(magnitude[~flat].max())  # the most salient, not the least


def test_salun_mask_is_global_top_ratio_and_unmasked_weights_are_bit_identical():
    s = kit.setting("noisy-shapes", 0, "random")
    ctx = s.context()
    assert ctx.recipe.weight_decay == 5e-4 and ctx.recipe.momentum == 0.9  # the recipe's decay and momentum act
    salun = SalUn(epochs=2, mask_ratio=0.5)
    masks = salun.mask(s.original, s.task.forget)
    n = sum(p.numel() for p in s.original.parameters())
    assert abs(sum(int(m.sum()) for m in masks.values()) - 0.5 * n) <= 1
    model = salun.unlearn(copy.deepcopy(s.original), s.task, ctx)
    moved = total = 0
    for (name, before), (_, after) in zip(s.original.named_parameters(), model.named_parameters()):
        keep = ~masks[name]
        assert torch.equal(after[keep], before[keep]), name
        assert torch.equal(torch.where(masks[name], before, after), before), name
        moved += int((after[masks[name]] != before[masks[name]]).sum())
        total += int(masks[name].sum())
    assert moved > 0.9 * total                          # the salient half did train
    assert all(p.grad is None for p in model.parameters())


def test_gradient_masking_alone_would_move_frozen_weights():
    """Why salun restores frozen entries after each step: with m ⊙ ∇ only, weight decay and momentum move them."""
    s = kit.setting("digits", 0, "random")
    masks = SalUn(mask_ratio=0.5).mask(s.original, s.task.forget)
    model = copy.deepcopy(s.original)
    handles = [p.register_hook(lambda g, m=masks[n]: g * m) for n, p in model.named_parameters()]
    s.context().fit(model, random_label_union(s.task, torch.Generator().manual_seed(0)), epochs=1, lr=0.013)
    for h in handles:
        h.remove()
    drifted = sum(int((a[~masks[n]] != b[~masks[n]]).sum())
                  for (n, a), (_, b) in zip(s.original.named_parameters(), model.named_parameters()))
    assert drifted > 0


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5), ratio=st.floats(0.01, 1.0),
       seed=st.integers(0, 2**31 - 1), ties=st.booleans())
def test_saliency_mask_size_and_order(sizes, ratio, seed, ties):
    g = torch.Generator().manual_seed(seed)
    grads = {f"p{i}": torch.randn(n, generator=g) for i, n in enumerate(sizes)}
    if ties:
        grads = {k: v.round() for k, v in grads.items()}
    masks = saliency_mask(grads, ratio)
    flat_g = torch.cat([v.abs() for v in grads.values()])
    flat_m = torch.cat([masks[k] for k in grads])
    assert int(flat_m.sum()) == int(len(flat_g) * ratio)  # rounded down, as the authors' threshold index
    if flat_m.any() and (~flat_m).any():
        assert float(flat_g[flat_m].min()) >= float(flat_g[~flat_m].max())
    assert torch.equal(flat_m, torch.cat([saliency_mask(grads, ratio)[k] for k in grads]))


def test_salun_is_deterministic_under_a_seed():
    a, _ = _unlearn(SalUn(epochs=2), "digits")
    b, _ = _unlearn(SalUn(epochs=2), "digits")
    sa, sb = _state(a), _state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_salun_with_full_mask_is_random_label():
    a, _ = _unlearn(SalUn(epochs=1, mask_ratio=1.0, lr=0.01), "digits")
    b, _ = _unlearn(RandomLabel(epochs=1, lr=0.01), "digits")
    sa, sb = _state(a), _state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_salun_needs_a_forget_set():
    s = kit.setting("digits", 0, "random")
    empty = Task(s.task.retain, s.task.forget.subset(torch.zeros(0, dtype=torch.int64), "none"), s.task.val)
    with pytest.raises(ValueError, match="non-empty forget set"):
        SalUn().unlearn(copy.deepcopy(s.original), empty, s.context())
