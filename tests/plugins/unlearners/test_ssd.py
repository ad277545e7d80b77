"""The ``ssd`` unlearner (plugins/dememo_plugins/unlearners/ssd.py): behaviour tests and reference checks.

Reference checks (issue 17) for ``ssd``, ``salun`` and ``mia-efficacy``, and for the loss-based unlearners
``finetune``, ``gradient-ascent``, ``neggrad-plus``, ``random-label``, ``l1-sparse``, ``cf-k``, ``scrub`` and
``rurk``: each plugin against a loop transcription, written here independently, of its paper's equation as
the authors' released code computes it.

- ssd: if-loops/selective-synaptic-dampening, ``ssd.py`` (``calc_importance``, ``modify_weight``) with the
  loaders of ``src/forget_random_main.py`` (unshuffled, batch 128, full data = retain then forget).

ssd, fisher and influence (and their shared ``_fisher`` statistics): invariants, direction, sensitivity,
determinism and parameter errors.

- ssd (α = 7, λ = 1): 22 of 14,826 small-cnn weights dampened; class 0 accuracy 0.0, other classes
  0.919. At α = 10 = |D|/|D_f| nothing can be selected and the model comes back bit-identical.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.data import Data
from dememo.testing import UnlearnerContract, tiny_context
from dememo.testing.fixtures import TinyMLP
from dememo.training import accuracy
from dememo_plugins.unlearners import _fisher
from dememo_plugins.unlearners.ssd import SelectiveSynapticDampening

import support.unlearning as kit
from support.unlearners.fisher import _flat, _other_classes, _tiny, _unlearn
from support.unlearners.trained import _batches, _params, _trained


def released_ssd(model, task, alpha, lam, batch_size):
    """if-loops/selective-synaptic-dampening, ssd.py, transcribed as a loop: evaluation mode; per unshuffled
    batch the squared gradient of the batch-mean cross-entropy, averaged over the batches (``calc_importance``)
    for the forget loader and for the full loader (retain then forget, as ``ConcatDataset`` in
    src/forget_random_main.py); then per parameter tensor (``modify_weight``, exponent 1, lower bound 1):
    where fimp > α·oimp multiply by min(λ·oimp/fimp, 1)."""
    model = copy.deepcopy(model).eval()

    def importance(batches):
        imp = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
        for x, y in batches:
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
            for n, p in model.named_parameters():
                imp[n] += p.grad.detach() ** 2
        return {n: v / len(batches) for n, v in imp.items()}

    f = task.forget
    forget_imp = importance(_batches(f.x, f.y, batch_size))
    full_imp = importance(_batches(torch.cat([task.retain.x, f.x]), torch.cat([task.retain.y, f.y]), batch_size))
    chosen = 0
    with torch.no_grad():
        for n, p in model.named_parameters():
            fimp, oimp = forget_imp[n], full_imp[n]
            where = fimp > oimp * alpha
            update = (oimp * lam / fimp)[where]
            update[update > 1] = 1
            p[where] = p[where] * update
            chosen += int(where.sum())
    return model, chosen


@pytest.mark.reference("unlearner", "ssd", source="if-loops/selective-synaptic-dampening:ssd.py")
@pytest.mark.parametrize("alpha,lam", [(2.0, 1.0), (1.5, 0.5)])
def test_ssd_batch_mean_is_the_released_importance_and_dampening(alpha, lam):
    """importance="batch-mean" equals the released code parameter-wise (batch 12: the forget set of 40
    spans 4 batches, the last short; the full loader's 10th batch mixes retain and forget samples)."""
    model, task, splits = _trained()
    expected, chosen = released_ssd(model, task, alpha, lam, batch_size=12)
    assert chosen > 0  # the check is not vacuous: the released formula dampens something here
    ssd = SelectiveSynapticDampening(alpha=alpha, lam=lam, importance="batch-mean", batch_size=12)
    got = ssd.unlearn(copy.deepcopy(model), task, tiny_context(splits, budget=None))
    assert int((_params(got) != _params(model)).sum()) == chosen
    assert torch.allclose(_params(got), _params(expected), rtol=1e-5, atol=1e-7)


@pytest.mark.reference("unlearner", "ssd", source="if-loops/selective-synaptic-dampening:ssd.py")
def test_ssd_default_is_the_released_formula_with_per_sample_batches():
    """The default (the paper's per-sample empirical Fisher) is the released formula with batches of one
    sample, and differs from the released batch-12 estimate (the option above)."""
    model, task, splits = _trained()
    expected, chosen = released_ssd(model, task, 2.0, 1.0, batch_size=1)
    batched, chosen_batched = released_ssd(model, task, 2.0, 1.0, batch_size=12)
    assert chosen > 0
    got = SelectiveSynapticDampening(alpha=2.0, lam=1.0).unlearn(copy.deepcopy(model), task,
                                                                 tiny_context(splits, budget=None))
    assert torch.allclose(_params(got), _params(expected), rtol=1e-5, atol=1e-7)
    assert not torch.allclose(_params(got), _params(batched), rtol=1e-5, atol=1e-7)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 9), size=st.integers(1, 4))
def test_batch_mean_importance_is_the_mean_over_batches_and_per_sample_fisher_at_batch_one(seed, n, size):
    g = torch.Generator().manual_seed(seed)
    model = TinyMLP((1, 2, 2), 3, hidden=4)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    data = Data.from_tensors(torch.rand(n, 1, 2, 2, generator=g), torch.randint(0, 3, (n,), generator=g), 3)
    params = list(model.parameters())
    squares = [torch.cat([t.reshape(-1) for t in torch.autograd.grad(F.cross_entropy(model(x), y), params)]) ** 2
               for x, y in _batches(data.x, data.y, size)]
    got = _fisher.batch_mean_importance(model, [data], size)
    assert torch.allclose(got, torch.stack(squares).mean(0), rtol=1e-5, atol=1e-9)
    halves = [data.subset(torch.arange(n // 2)), data.subset(torch.arange(n // 2, n))]  # parts are concatenated
    one = _fisher.batch_mean_importance(model, halves, 1)
    assert torch.allclose(one, _fisher.empirical_fisher_diagonal(model, data), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("importance", ["per-sample", "batch-mean"])
def test_ssd_warns_when_alpha_reaches_the_data_to_forget_ratio(importance, caplog, monkeypatch):
    import dememo_plugins.unlearners.ssd as ssd_module

    monkeypatch.setattr(ssd_module, "_WARNED", set())  # the warning is given once per setting and process
    model, task, splits = _trained()
    bound = (len(task.retain) + len(task.forget)) / len(task.forget)  # 3 on the tiny class task
    with caplog.at_level(logging.WARNING, logger="dememo"):
        same = SelectiveSynapticDampening(alpha=bound, importance=importance, batch_size=20).unlearn(
            copy.deepcopy(model), task, tiny_context(splits, budget=None))
    assert any("|D|/|D_f|" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dememo"):  # the same setting again: not repeated
        SelectiveSynapticDampening(alpha=bound, importance=importance, batch_size=20).unlearn(
            copy.deepcopy(model), task, tiny_context(splits, budget=None))
    assert not any("|D|/|D_f|" in r.getMessage() for r in caplog.records)
    # 20 divides |D_r| = 80: the forget set fills its own batches, so the bound is exact for batch-mean too
    assert torch.equal(_params(same), _params(model))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dememo"):
        SelectiveSynapticDampening(alpha=0.9 * bound, importance=importance).unlearn(
            copy.deepcopy(model), task, tiny_context(splits, budget=None))
    assert not any("|D|/|D_f|" in r.getMessage() for r in caplog.records)


class TestSsdBatchMeanContract(UnlearnerContract):
    """The batch-mean option keeps the unlearner contract (determinism, inputs not mutated, architecture)."""

    plugin_class = SelectiveSynapticDampening
    params = {"alpha": 2.0, "importance": "batch-mean", "batch_size": 16}


@pytest.mark.parametrize("kwargs,match", [({"importance": "fisher"}, "importance"), ({"batch_size": 0}, "batch_size")])
def test_ssd_rejects_bad_importance_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SelectiveSynapticDampening(**kwargs)


@settings(max_examples=15, deadline=None)
@given(alpha=st.floats(0.5, 12.0), lam=st.floats(0.05, 3.0), seed=st.integers(0, 3))
def test_ssd_only_shrinks_selected_parameters_and_leaves_the_rest_bit_identical(alpha, lam, seed):
    model, task, splits = _tiny(seed)
    unlearner = SelectiveSynapticDampening(alpha=alpha, lam=lam)
    ctx = tiny_context(splits, seed=seed, budget=None)
    full, forget, selected = unlearner.importances(model, task, ctx)
    ratio = forget / full.clamp_min(1e-300)
    assert bool((ratio[selected] > alpha * (1 - 1e-9)).all()) and bool((ratio[~selected] <= alpha * (1 + 1e-9)).all())
    before = _flat(model)
    after = _flat(unlearner.unlearn(copy.deepcopy(model), task, ctx))
    assert torch.equal(after[~selected], before[~selected])
    assert bool((after.abs() <= before.abs()).all())
    beta = (lam * full[selected] / forget[selected]).clamp(max=1.0)
    assert torch.allclose(after[selected].double(), before[selected].double() * beta, rtol=1e-6, atol=0)


def test_ssd_cannot_select_anything_when_alpha_reaches_the_data_to_forget_ratio():
    # []_D ≥ (|D_f|/|D|)·[]_f for every parameter, so α ≥ |D|/|D_f| (= 10 here, the published α) selects nothing
    s = kit.setting("noisy-shapes", 0, "class", (0,))
    ratio = (len(s.task.retain) + len(s.task.forget)) / len(s.task.forget)
    model, _ = _unlearn(SelectiveSynapticDampening(alpha=ratio))
    assert torch.equal(_flat(model), _flat(s.original))


def test_ssd_forgets_a_class_on_noisy_shapes_by_dampening_few_weights():
    model, s = _unlearn(SelectiveSynapticDampening(alpha=7.0))
    changed = int((_flat(model) != _flat(s.original)).sum())
    assert 0 < changed < 0.01 * _flat(model).numel()                                  # measured 22 of 14,826
    assert accuracy(s.original, s.task.forget) > 0.85                                 # measured 0.947
    assert accuracy(model, s.task.forget) < 0.2                                       # measured 0.0 (retrain 0.0)
    other = _other_classes(s)
    assert accuracy(model, other) > accuracy(s.original, other) - 0.03                # measured 0.916 → 0.919
