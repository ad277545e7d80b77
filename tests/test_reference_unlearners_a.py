"""Reference checks (issue 17) for ``ssd``, ``salun`` and ``mia-efficacy``, and for the loss-based unlearners
``finetune``, ``gradient-ascent``, ``neggrad-plus``, ``random-label``, ``l1-sparse``, ``cf-k``, ``scrub`` and
``rurk``: each plugin against a loop transcription, written here independently, of its paper's equation as
the authors' released code computes it.

- ssd: if-loops/selective-synaptic-dampening, ``ssd.py`` (``calc_importance``, ``modify_weight``) with the
  loaders of ``src/forget_random_main.py`` (unshuffled, batch 128, full data = retain then forget).
- salun: OPTML-Group/Unlearn-Saliency, ``Classification/generate_mask.py`` (``save_gradient_ratio``).
- mia-efficacy: OPTML-Group/Unlearn-Saliency, ``Classification/evaluation/SVC_MIA.py`` with the sets of
  ``Classification/main_random.py``.
- finetune, gradient-ascent, random-label, l1-sparse: OPTML-Group/Unlearn-Saliency ``Classification/unlearn/``
  (FT.py, GA.py, RL.py); neggrad-plus and scrub: meghdadk/SCRUB; cf-k: shash42/Evaluating-Inexact-Unlearning
  ``src/methods.py``; rurk: the paper (no code released). These are checked on their first optimiser step
  (the objective: terms, signs, weights, data), not on the optimiser or schedule (see the section below).

Measured (seed 0, 2 loaded CPU cores): the tiny model (643 weights) on the class-0 task at α = 2: the released
batch-12 formula dampens 135 weights, the per-sample one 58, and the two dampened models differ in 157
entries (max 0.28); digits with class 0 forgotten: MIA-efficacy of the original 0.0, of the retrain 1.0.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import unlearning_kit as kit
from dememo.data import Data, Splits, Task
from dememo.evaluation import Evaluation
from dememo.testing import UnlearnerContract, tiny_class_task, tiny_context, tiny_splits, tiny_task
from dememo.testing.fixtures import TinyMLP
from dememo_plugins.metrics.mia_efficacy import MIAEfficacy
from dememo_plugins.unlearners import _fisher
from dememo_plugins.unlearners.salun import SalUn
from dememo_plugins.unlearners.ssd import SelectiveSynapticDampening



def _trained(seed=0, task="class"):
    splits = tiny_splits(seed=seed)
    ctx = tiny_context(splits, seed=seed, budget=None)
    model = ctx.train(splits.train)
    return model, (tiny_class_task(splits) if task == "class" else tiny_task(splits)), splits


def _batches(x, y, size):
    return [(x[s : s + size], y[s : s + size]) for s in range(0, len(y), size)]


# ---------------------------------------------------------------- ssd


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


def _params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


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


# ---------------------------------------------------------------- salun


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


# ---------------------------------------------------------------- mia-efficacy


class LogitsAreInputs(nn.Module):
    """Two-class 'model' whose logits are read off its input (20·(x − 0.5)), so a test chooses every
    sample's softmax output exactly."""

    def forward(self, x):
        return 20 * (x.flatten(1) - 0.5)


def _synthetic(n, member, g):
    """n samples with true-class margin drawn around ``member`` (members: confident; others: less so),
    about a fifth misclassified, so true-class confidence differs from the top probability."""
    y = torch.randint(0, 2, (n,), generator=g)
    margin = (0.25 if member else 0.08) + 0.12 * torch.randn(n, generator=g)
    x = torch.full((n, 2), 0.5)
    x[torch.arange(n), y] += margin / 2
    x[torch.arange(n), 1 - y] -= margin / 2
    return Data.from_tensors(x.clamp(0, 1).view(n, 1, 1, 2), y, 2)


def released_svc_mia(model, retain, test, forget, feature="true-class", members=None):
    """OPTML-Group/Unlearn-Saliency, SVC_MIA.py ("confidence": SVC(C=3, gamma="auto", kernel="rbf") on the
    softmax probability of the true class) with main_random.py's sets: shadow_train = the first |test|
    retain samples (label 1), shadow_test = the test set (label 0), target_test = the forget set; the value
    is 1 − mean prediction. ``feature="top"`` (the largest probability) and ``members`` (another number of
    retain samples as members) are wrong variants, for contrast."""
    from sklearn.svm import SVC

    def conf(x, y):
        with torch.no_grad():
            p = F.softmax(model(x), dim=-1)
        return (torch.gather(p, 1, y[:, None]) if feature == "true-class" else p.max(1, keepdim=True).values).numpy()

    n = len(test) if members is None else members
    features = np.concatenate([conf(retain.x[:n], retain.y[:n]), conf(test.x, test.y)]).reshape(-1, 1)
    labels = np.concatenate([np.ones(n), np.zeros(len(test))])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(features, labels)
    return 1 - clf.predict(conf(forget.x, forget.y).reshape(len(forget), -1)).mean()


@pytest.mark.reference("metric", "mia-efficacy",
                       source="OPTML-Group/Unlearn-Saliency:Classification/evaluation/SVC_MIA.py")
@pytest.mark.parametrize("seed", [0, 1])
def test_mia_efficacy_is_the_released_svc_attack(seed):
    g = torch.Generator().manual_seed(seed)
    retain, test = _synthetic(300, True, g), _synthetic(120, False, g)
    seen, unseen = _synthetic(40, True, g), _synthetic(60, False, g)
    forget = Data.from_tensors(torch.cat([seen.x, unseen.x]), torch.cat([seen.y, unseen.y]), 2)
    model = LogitsAreInputs()
    splits = Splits(test, test, test)
    ev = Evaluation(model=model, splits=splits, track="unlearning", task=Task(retain, forget, test))
    got = MIAEfficacy().compute(ev, tiny_context(splits, budget=None))["mia_efficacy"]
    assert got == pytest.approx(released_svc_mia(model, retain, test, forget), abs=1e-12)
    # the data discriminate: an inverted orientation (1 − value), the top probability as the feature, or
    # every retain sample as members would each give a different value
    assert abs(got - (1 - got)) > 0.05
    assert released_svc_mia(model, retain, test, forget, feature="top") != pytest.approx(got)
    assert released_svc_mia(model, retain, test, forget, members=len(retain)) != pytest.approx(got)


def test_mia_efficacy_orientation_on_a_forgotten_class():
    """On a forgotten class the original reads below the retrain: the original is confident on the forget
    set (looks like members), the retrain is not (looks like test data). Measured 0.0 and 1.0 on digits."""
    s = kit.setting("digits", 0, "class", (0,))
    original, retrained = kit.mia_efficacy(s.original, s), kit.mia_efficacy(s.retrained, s)
    assert original < 0.2 and retrained > 0.8


# ---------------------------------------------------------------- loss-based unlearners: the first step
#
# With one batch holding the whole set (and the forget set as the whole paired batch), no momentum and no
# weight decay, the first optimiser step is θ_1 = θ_0 − lr·∇L(θ_0) (the schedules all start at factor 1),
# so comparing it with ∇ of the published objective, transcribed here, pins the objective: its terms,
# signs, weights and data. It does not check the optimiser or the schedule, which the plugins' docstrings
# list as dememo's choices (the released loops use SGD with momentum 0.9 and weight decay 5e-4 at a
# constant rate for FT / GA / RL / ℓ1-sparse, and plain SGD for NegGrad+).

ONE_BATCH = dict(batch_size=10_000, momentum=0.0, weight_decay=0.0, schedule="constant")


def _first_step(unlearner, seed=0, num_classes=3):
    from dememo.training import Recipe

    splits = tiny_splits(seed=seed, num_classes=num_classes)
    model = tiny_context(splits, seed=seed, budget=None).train(splits.train)
    task = tiny_task(splits, seed=seed)
    ctx = tiny_context(splits, seed=seed, budget=None, recipe=Recipe(epochs=1, lr=0.05, **ONE_BATCH))
    after = unlearner.unlearn(copy.deepcopy(model), task, ctx)
    return model, task, after


def _sgd_step(model, objective, lr):
    """θ − lr·∇objective(θ) (train mode, as the released loops; the tiny MLP has no dropout or BatchNorm)."""
    model = copy.deepcopy(model).train()
    params = list(model.parameters())
    grads = torch.autograd.grad(objective(model), params)
    return torch.cat([(p - lr * g).detach().reshape(-1) for p, g in zip(params, grads, strict=True)])


def _ce(model, data, labels=None):
    return F.cross_entropy(model(data.x), data.y if labels is None else labels)


@pytest.mark.reference("unlearner", "finetune", source="OPTML-Group/Unlearn-Saliency:Classification/unlearn/FT.py")
def test_finetune_first_step_descends_the_retain_cross_entropy():
    """FT.py (FT_iter without ℓ1): loss = CE(retain batch), minimised."""
    from dememo_plugins.unlearners.finetune import Finetune

    model, task, after = _first_step(Finetune(epochs=1, lr=0.05))
    expected = _sgd_step(model, lambda m: _ce(m, task.retain), 0.05)
    assert torch.allclose(_params(after), expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(_params(after), _params(model))


@pytest.mark.reference("unlearner", "gradient-ascent", source="OPTML-Group/Unlearn-Saliency:Classification/unlearn/GA.py")
def test_gradient_ascent_first_step_ascends_the_forget_cross_entropy():
    """GA.py: loss = −CE(forget batch), minimised, i.e. θ + lr·∇CE(forget)."""
    from dememo_plugins.unlearners.gradient_ascent import GradientAscent

    model, task, after = _first_step(GradientAscent(epochs=1, lr=0.05))
    expected = _sgd_step(model, lambda m: -_ce(m, task.forget), 0.05)
    assert torch.allclose(_params(after), expected, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        assert float(_ce(after, task.forget)) > float(_ce(model, task.forget))  # the forget loss went up


@pytest.mark.reference("unlearner", "neggrad-plus",
                       source="meghdadk/SCRUB:small_scale_unlearning.ipynb")
@pytest.mark.parametrize("alpha", [0.99, 0.8])
def test_neggrad_plus_first_step_is_the_weighted_retain_minus_forget_objective(alpha):
    """run_neggrad_epoch: loss = α·(CE(retain batch) + (wd/2)·‖θ − θ_0‖²) − (1 − α)·CE(forget batch), with
    a retain batch zipped with a cycled forget batch; at the first step θ = θ_0, so the penalty's gradient
    is 0 (dememo has no such term: it keeps the recipe's weight decay instead, a deviation)."""
    from dememo_plugins.unlearners.neggrad_plus import NegGradPlus

    model, task, after = _first_step(NegGradPlus(alpha=alpha, epochs=1, lr=0.05))
    expected = _sgd_step(model, lambda m: alpha * _ce(m, task.retain) - (1 - alpha) * _ce(m, task.forget), 0.05)
    assert torch.allclose(_params(after), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.reference("unlearner", "random-label", source="OPTML-Group/Unlearn-Saliency:Classification/unlearn/RL.py")
def test_random_label_first_step_is_cross_entropy_on_wrong_forget_labels_and_true_retain_labels():
    """RL (SalUn eq. 5 with an all-ones mask; RL.py's union of relabelled forget and retain data): mean CE
    over the forget samples with a wrong label and the retain samples with their own. With two classes the
    wrong label is 1 − y, so the transcription knows it exactly. (RL.py draws the new label from all K
    classes, so one forget sample in K keeps its own; dememo follows the paper's y' ≠ y, documented.)"""
    from dememo_plugins.unlearners.random_label import RandomLabel

    model, task, after = _first_step(RandomLabel(epochs=1, lr=0.05), num_classes=2)
    f, r = task.forget, task.retain

    def objective(m):
        wrong = F.cross_entropy(m(f.x), 1 - f.y, reduction="sum")
        return (wrong + F.cross_entropy(m(r.x), r.y, reduction="sum")) / (len(f) + len(r))

    assert torch.allclose(_params(after), _sgd_step(model, objective, 0.05), rtol=1e-4, atol=1e-6)


@pytest.mark.reference("unlearner", "l1-sparse", source="OPTML-Group/Unlearn-Saliency:Classification/unlearn/FT.py")
def test_l1_sparse_first_step_adds_the_l1_penalty_to_the_retain_cross_entropy():
    """FT.py (FT_l1): loss = CE(retain batch) + γ_t·‖θ‖₁ over all parameters, γ_0 = γ."""
    from dememo_plugins.unlearners.l1_sparse import L1Sparse

    gamma = 0.01
    model, task, after = _first_step(L1Sparse(epochs=1, lr=0.05, gamma=gamma))

    def objective(m):
        return _ce(m, task.retain) + gamma * sum(p.abs().sum() for p in m.parameters())

    assert torch.allclose(_params(after), _sgd_step(model, objective, 0.05), rtol=1e-4, atol=1e-6)
    plain = _sgd_step(model, lambda m: _ce(m, task.retain), 0.05)
    assert not torch.allclose(_params(after), plain, rtol=1e-4, atol=1e-6)  # the penalty acts at this γ


def released_tail(model, k):
    """shash42/Evaluating-Inexact-Unlearning, src/methods.py (resetFinalResnet with reinit=False), transcribed:
    convolution, BatchNorm2d and linear modules in definition order, walked from the last; each one's
    parameters become trainable until the k-th convolution/linear module has been reached."""
    found = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    tail, done = [], 0
    for m in reversed(found):
        tail.append(m)
        done += isinstance(m, (nn.Conv2d, nn.Linear))
        if done >= k:
            break
    return {id(p) for m in tail for p in m.parameters()}


@pytest.mark.reference("unlearner", "cf-k", source="shash42/Evaluating-Inexact-Unlearning:src/methods.py")
@pytest.mark.parametrize("k", [1, 2])
def test_cf_k_first_step_fine_tunes_exactly_the_released_tail_on_the_retain_set(k):
    """cat_forget_finetune: freeze all but the last k layers (no re-initialisation), then train on the
    retain set with cross-entropy: the first step is θ − lr·∇CE(retain) on the tail, the rest unchanged."""
    from dememo_plugins.unlearners.cf_k import CfK

    model, task, after = _first_step(CfK(k=k, epochs=1, lr=0.05))
    tail = released_tail(model, k)
    stepped = copy.deepcopy(model).train()
    grads = torch.autograd.grad(_ce(stepped, task.retain), list(stepped.parameters()))
    expected = torch.cat([(p - 0.05 * g if id(q) in tail else p).detach().reshape(-1)
                          for p, q, g in zip(stepped.parameters(), model.parameters(), grads, strict=True)])
    assert torch.allclose(_params(after), expected, rtol=1e-4, atol=1e-6)
    moved = _params(after) != _params(model)
    assert int(moved.sum()) > 0 and (k == 2 or int(moved.sum()) <= 3 * 32 + 3)  # k = 1: the head only


def released_distill_kl(student_logits, teacher_logits, T):
    """meghdadk/SCRUB thirdparty/repdistiller/distiller_zoo/KD.py (DistillKL), transcribed:
    Σ KL(softmax(t/T) ‖ softmax(s/T)) · T² / batch size."""
    log_s = torch.log_softmax(student_logits / T, dim=1)
    p_t = torch.softmax(teacher_logits / T, dim=1)
    return (p_t * (p_t.log() - log_s)).sum() * T**2 / len(student_logits)


@pytest.mark.reference("unlearner", "scrub", source="meghdadk/SCRUB:thirdparty/repdistiller/helper/loops.py")
@pytest.mark.parametrize("step", ["max", "min"])
def test_scrub_max_and_min_steps_follow_the_released_objectives(step):
    """helper/loops.py (train_distill): a "maximize" pass minimises −DistillKL(s, t) on the forget set, a
    "minimize" pass γ·CE(s, y) + α·DistillKL(s, t) (+ β·0 for plain KD) on the retain set. The teacher here
    is a second model (a perturbed copy), so the divergence and its gradient are not zero at the start;
    one batch holds the whole set, so one pass is one step θ − lr·∇loss."""
    from dememo.training import Recipe
    from dememo_plugins.unlearners.scrub import Scrub

    splits = tiny_splits()
    model = tiny_context(splits, budget=None).train(splits.train)
    task = tiny_task(splits)
    teacher = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    scrub = Scrub(lr=0.05, kd_T=2.0, gamma=0.7, alpha=0.5, forget_batch_size=10_000)
    ctx = tiny_context(splits, budget=None, recipe=Recipe(epochs=1, lr=0.05, **ONE_BATCH))
    data = task.forget if step == "max" else task.retain
    with torch.no_grad():
        t_logits = teacher(data.x)
    after = copy.deepcopy(model)
    (scrub.max_step if step == "max" else scrub.min_step)(after, data, t_logits, ctx)
    if step == "max":
        expected = _sgd_step(model, lambda m: -released_distill_kl(m(data.x), t_logits, 2.0), 0.05)
    else:
        expected = _sgd_step(model, lambda m: 0.7 * _ce(m, data) + 0.5 * released_distill_kl(m(data.x), t_logits, 2.0),
                             0.05)
    assert torch.allclose(_params(after), expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(_params(after), _params(model))


@pytest.mark.reference("unlearner", "rurk",
                       source="paper: The Unseen Threat: Residual Knowledge in Machine Unlearning under Perturbed "
                              "Samples (NeurIPS 2025, arXiv 2601.22359), the RURK objective; no code released")
@pytest.mark.parametrize("clip", [1e9, 0.05])
def test_rurk_first_step_is_the_clipped_residual_knowledge_objective(clip):
    """The paper's per-step loss CE(retain) − λ_f·CE(forget) − λ_a·CE(forget + ξ), ξ ~ N(0, τ²), with the
    gradient norm clipped. At τ = 0 the noisy term is CE(forget) itself, so the step is deterministic:
    θ − lr·c(g)·g with g = ∇[CE_r − (λ_f + λ_a)·CE_f] and c(g) = min(1, clip/‖g‖)."""
    from dememo_plugins.unlearners.rurk import Rurk

    model, task, after = _first_step(Rurk(epochs=1, lr=0.05, tau=0.0, lambda_f=0.2, lambda_a=0.1, grad_clip=clip))
    stepped = copy.deepcopy(model).train()
    params = list(stepped.parameters())
    grads = torch.autograd.grad(_ce(stepped, task.retain) - 0.3 * _ce(stepped, task.forget), params)
    norm = float(torch.cat([g.reshape(-1) for g in grads]).norm())
    scale = min(1.0, clip / (norm + 1e-6))  # clip_grad_norm_'s 1e-6
    expected = torch.cat([(p - 0.05 * scale * g).detach().reshape(-1) for p, g in zip(params, grads, strict=True)])
    assert torch.allclose(_params(after), expected, rtol=1e-4, atol=1e-6)
    if clip < 1:
        assert norm > clip  # the clipped case does clip
