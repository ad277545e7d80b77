"""Reference checks for the error-minimizing family of poisoners (issue 17): SEP, REM and class-wise EM
against the rules in the authors' released code, each transcribed here independently as a small loop.

- SEP (Sizhe-Chen/SEP, ``ens.py``): targeted sign descent towards (y + ⌊C/2⌋) mod C on the mean input
  gradient of the checkpoints, clipped to the ε-ball and [0, 1]; most checkpoints then predict the target.
- REM (CausalLearning/robust-unlearnable-examples, ``generate_robust_em.py`` and
  ``attacks/robust_workers.py``): every generation call restarts δu from U[−ε, ε]; every surrogate step
  trains on freshly generated noise, and the released noise is generated afresh on the final surrogate.
- class-wise EM (HanxunH/Unlearnable-Examples, ``perturbation.py`` ``universal_perturbation`` with
  ``toolbox.py`` ``min_min_attack``): the class noise is the mean of the per-sample one-step results.
- TAP (lhfowl/adversarial_poisons, ``village/shop/forgemaster_targeted.py`` with ``forgemaster_base.py``'s
  PGD step) and HYPO (TLMichael/Delusive-Adversary, ``poison.py``, attack P2): sign descent on a fixed
  clean-trained model towards (y + 1) mod C, respectively the true label.

Data: the first 60 training images of the embedded ``digits`` set (8×8, 10 classes) or tiny synthetic
sets; models: the 32-unit test MLP or a linear model. Every test here takes well under 3 s on one thread.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import attrs
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dememo
from dememo.budget import Budget, check_poison
from dememo.data import Splits
from dememo.pgd import random_start
from dememo.testing import tiny_context
from dememo.training import Recipe
from dememo_plugins.datasets.digits import Digits
from dememo_plugins.poisoners.em import ErrorMinimizing
from dememo_plugins.poisoners.hypo import HypocriticalPerturbation
from dememo_plugins.poisoners.rem import RobustErrorMinimizing
from dememo_plugins.poisoners.sep import SelfEnsembleProtection
from dememo_plugins.poisoners.tap import TargetedAdversarialPoisoning


_DIGITS: dememo.Data | None = None


def digits(n: int = 60) -> dememo.Data:
    """The first ``n`` training images of ``digits`` (all ten classes occur in the first 60)."""
    global _DIGITS
    _DIGITS = _DIGITS or Digits().load(None, False).train
    return _DIGITS.subset(torch.arange(n))


def context(data: dememo.Data, seed: int = 0, budget: Budget | None = None, **kw) -> dememo.Context:
    return tiny_context(Splits(data, data, data), seed=seed, budget=budget, **kw)


@attrs.define
class Fixed(dememo.Architecture):
    """Builds copies of one given model (a surrogate whose weights the test knows)."""

    name: ClassVar[str] = "fixed-test-model"
    version: ClassVar[str] = "1"
    model: nn.Module = attrs.field(factory=nn.Identity)
    hook: object = None  # a forward hook for every copy built
    built: list = attrs.field(factory=list)

    def build(self, input_shape, num_classes):
        self.built.append(copy.deepcopy(self.model))
        if self.hook is not None:
            self.built[-1].register_forward_hook(self.hook)
        return self.built[-1]


# --- SEP -------------------------------------------------------------------------------------------------


def released_sep(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor, num_classes: int, eps: float,
                 alpha: float, steps: int) -> torch.Tensor:
    """ens.py, transcribed: target (y + ⌊C/2⌋) mod C; per step the input gradient of the mean CE towards
    the target on every checkpoint, averaged over checkpoints; x_c ← clip(min(max(x_c − α·sign(ḡ), x − ε),
    x + ε), 0, 1), starting from the clean image."""
    target = (y + num_classes // 2) % num_classes
    xc = x.clone()
    for _ in range(steps):
        grads = []
        for m in models:
            z = xc.clone().requires_grad_(True)
            grads.append(torch.autograd.grad(F.cross_entropy(m(z), target), z)[0])
        g = sum(grads) / len(grads)
        xc = torch.clamp(torch.min(torch.max(xc - alpha * g.sign(), x - eps), x + eps), 0.0, 1.0)
    return xc


@pytest.mark.reference("poisoner", "sep", source="Sizhe-Chen/SEP:ens.py")
@pytest.mark.parametrize("seed", [0, 1])
def test_sep_is_the_released_targeted_update(seed):
    """Sizhe-Chen/SEP ``ens.py``: 4 steps of the released update on the same checkpoints, image for image."""
    data, budget = digits(), Budget("linf", 0.25)
    sep = SelfEnsembleProtection(checkpoints=3, steps=4)
    out = sep.poison(data, context(data, seed, budget))
    models = sep.ensemble(data, context(data, seed, budget))  # the same run, the same snapshots
    expected = released_sep(models, data.x, data.y, 10, budget.eps, 0.1 * budget.eps, 4)
    check_poison(data.x, out, budget)
    # equal up to float rounding (a sign flip of a near-zero mean gradient moves one pixel by α)
    same = float((out - expected).abs().le(1e-6).float().mean())
    assert same > 0.995, f"{same:.4f} of the pixels match the released update"
    assert (out - expected).abs().max() <= 2 * 0.1 * budget.eps + 1e-6


@pytest.mark.reference("poisoner", "sep", source="Sizhe-Chen/SEP:ens.py")
def test_sep_checkpoints_predict_the_target_label():
    """Sizhe-Chen/SEP ``ens.py`` reports the mean number of checkpoints predicting (y + 5) mod 10 on the
    protected images; with 30 released-size steps (ε/10) at ε = 0.5 on digits, ≥ 90 % of the (checkpoint,
    image) pairs predict it (measured 0.944-0.994 over seeds 0-3; the untargeted version 1 gave 0.03-0.20)."""
    data, budget = digits(), Budget("linf", 0.5)
    target = (data.y + 5) % 10
    for seed in range(2):
        sep = SelfEnsembleProtection(checkpoints=3, steps=30)
        out = sep.poison(data, context(data, seed, budget))
        models = sep.ensemble(data, context(data, seed, budget))
        with torch.no_grad():
            hits = torch.stack([m(out).argmax(1) == target for m in models]).float()
            clean = torch.stack([m(data.x).argmax(1) == target for m in models]).float()
        assert hits.mean() >= 0.9, f"seed {seed}: {hits.mean():.3f}"
        assert clean.mean() < 0.2  # the clean images are not already classified as the target


def test_sep_untargeted_is_an_explicit_variant_that_ascends_the_true_label_loss():
    data, budget = digits(), Budget("linf", 0.25)
    sep = SelfEnsembleProtection(checkpoints=2, steps=5, target="untargeted")
    out = sep.poison(data, context(data, 0, budget))
    models = sep.ensemble(data, context(data, 0, budget))
    with torch.no_grad():
        losses = [float(sum(F.cross_entropy(m(x), data.y) for m in models)) for x in (data.x, out)]
    assert losses[1] > 1.3 * losses[0]  # measured ×1.6 (seed 0)
    assert not torch.equal(out, SelfEnsembleProtection(checkpoints=2, steps=5).poison(data, context(data, 0, budget)))


def test_sep_shift_is_checked_against_the_number_of_classes():
    data = digits()
    sep = SelfEnsembleProtection(checkpoints=1, steps=1, shift=10)
    with pytest.raises(ValueError, match="true label"):
        sep.poison(data, context(data, 0, Budget("linf", 0.25)))
    assert torch.equal(SelfEnsembleProtection(shift=3).targets(torch.arange(4), 4), torch.tensor([3, 0, 1, 2]))
    assert torch.equal(SelfEnsembleProtection().targets(torch.arange(5), 5), torch.tensor([2, 3, 4, 0, 1]))
    with pytest.raises(ValueError, match="shift"):
        SelfEnsembleProtection(shift=0)
    with pytest.raises(ValueError, match="target"):
        SelfEnsembleProtection(target="away")


# --- class-wise EM ---------------------------------------------------------------------------------------


def released_class_noise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, eps: float,
                         alpha: float) -> torch.Tensor:
    """perturbation.py ``universal_perturbation`` with toolbox.py ``min_min_attack`` (num_steps = 1) on one
    batch, one image at a time: p = clip(x + δ_y, 0, 1); η = clamp(p − α·sign(∇_p CE) − x, −ε, ε); then
    for each class in the batch δ_c = clamp(mean of its η, −ε, ε)."""
    etas = []
    for i in range(len(x)):
        p = (x[i:i + 1] + noise[y[i]]).clamp(0, 1).requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(p), y[i:i + 1]), p)
        etas.append((p.detach() - alpha * g.sign() - x[i:i + 1]).clamp(-eps, eps)[0])
    new = noise.clone()
    for c in y.unique():
        new[c] = torch.stack([e for e, label in zip(etas, y) if label == c]).mean(0).clamp(-eps, eps)
    return new


@pytest.mark.reference("poisoner", "em", source="HanxunH/Unlearnable-Examples:perturbation.py")
@pytest.mark.parametrize("seed", [0, 1])
def test_class_wise_em_noise_is_the_mean_of_per_sample_one_step_results(seed):
    """HanxunH/Unlearnable-Examples ``perturbation.py`` / ``toolbox.py``: on a fixed surrogate (learning
    rate 0) and one batch holding every image, one round of ``em(mode=class)`` with its defaults gives,
    from zero noise, δ_c = mean over class c of the per-image one-step results."""
    data, budget = digits(), Budget("linf", 0.25)
    torch.manual_seed(seed)
    fixed = Fixed(model=dememo.testing.fixtures.TinyMLP(data.shape, 10).eval())
    ctx = context(data, seed, budget, architecture=fixed, recipe=Recipe(epochs=1, batch_size=32, lr=0.0))
    out = ErrorMinimizing(mode="class", max_rounds=1, batch_size=64).poison(data, ctx)
    check_poison(data.x, out, budget)
    noise = released_class_noise(fixed.model, data.x, data.y, torch.zeros(10, *data.shape), budget.eps,
                                 0.1 * budget.eps)
    expected = (data.x + noise[data.y]).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-6), float((out - expected).abs().max())
    # the mean of ±α steps over a class: not a sign pattern, and within α of zero (one step from zero)
    assert noise.abs().max() <= 0.1 * budget.eps + 1e-7 and (noise.abs() < 0.1 * budget.eps - 1e-4).any()


def test_em_defaults_follow_the_released_settings_per_mode():
    sample, cls = ErrorMinimizing(), ErrorMinimizing(mode="class")
    assert (sample.steps, sample.target_error) == (20, 0.01)
    assert (cls.steps, cls.target_error) == (1, 0.1)
    assert ErrorMinimizing(mode="class", pgd_steps=3, stop_error=0.2).steps == 3
    with pytest.raises(ValueError, match="pgd_steps"):
        ErrorMinimizing(pgd_steps=0)
    with pytest.raises(ValueError, match="stop_error"):
        ErrorMinimizing(stop_error=1.5)


def test_class_wise_em_is_class_wise_seeded_and_makes_the_data_easy_to_fit():
    base = digits()
    data = base.with_images(0.25 + 0.5 * base.x, "mid")  # in [0.25, 0.75]: x + δ is never clipped
    budget = Budget("linf", 0.25)
    em = ErrorMinimizing(mode="class", max_rounds=3, train_steps=3, batch_size=16)  # 4 batches a pass
    out = em.poison(data, context(data, 0, budget))
    check_poison(data.x, out, budget)
    assert torch.equal(out, em.poison(data, context(data, 0, budget)))
    assert not torch.equal(out, em.poison(data, context(data, 1, budget)))
    delta = out - data.x
    for c in range(10):  # one δ per class
        rows = delta[data.y == c]
        assert torch.allclose(rows, rows[0].expand_as(rows), atol=1e-6)
    # min-min: a fresh model fits the poisoned data faster than the clean data (same init, same steps)
    losses = {}
    for name, x in {"em": out, "clean": data.x}.items():
        ctx = context(data, 5)
        model = ctx.new_model()
        ctx.fit(model, data.with_images(x, name), epochs=2)
        losses[name] = float(F.cross_entropy(ctx.predict(model, x), data.y))
    assert losses["em"] < losses["clean"], losses  # measured 1.75-1.96 against 2.15 (poison seeds 0-3)


# --- REM -------------------------------------------------------------------------------------------------


class Linear2(nn.Module):
    """Two-class logistic regression: ∇_x CE = (p_y − 1)(w_y − w_other), so the sign of the input gradient
    is −sign(w_y − w_other) wherever x is — the released descent step is then known from the weights."""

    def __init__(self, d: int):
        super().__init__()
        self.fc = nn.Linear(d, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))


def two_class_data(n: int = 40, side: int = 6, seed: int = 0) -> dememo.Data:
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand(n, 1, side, side, generator=g)  # ε = 0.05 never leaves [0, 1]
    return dememo.Data.from_tensors(x, torch.arange(n) % 2, 2, tag=f"rem-ref:{seed}")


def descent_coordinates(delta: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sign(w_y − w_other)·δ per pixel: the coordinate along which the released step moves δu."""
    direction = (weight[y] - weight[1 - y]).sign().view_as(delta)
    return direction * delta


def check_fresh_one_step(coord: torch.Tensor, eps: float, alpha: float, what: str) -> None:
    """δu = clamp(u + α·d, −ε, ε) with u ~ U[−ε, ε] drawn afresh: the coordinate lies in [α − ε, ε], sits at
    ε with probability α/2ε and is uniform below it (mean (ε² − (α − ε)²)/(4ε) + α/2, below ε)."""
    n = coord.numel()
    assert coord.min() >= alpha - eps - 1e-6, f"{what}: a pixel below α − ε (δu not a fresh one-step result)"
    at_top = float((coord > eps - 1e-6).float().mean())
    expected_top = alpha / (2 * eps)
    assert abs(at_top - expected_top) < 5 * (expected_top * (1 - expected_top) / n) ** 0.5 + 0.01, \
        f"{what}: share at ε {at_top:.3f}, expected {expected_top:.3f} (saturation = noise carried over)"
    expected_mean = (eps**2 - (alpha - eps) ** 2) / (4 * eps) + expected_top * eps
    assert abs(float(coord.mean()) - expected_mean) < 0.1 * eps, f"{what}: mean {float(coord.mean()):.4f}"


@pytest.mark.reference("poisoner", "rem", source="CausalLearning/robust-unlearnable-examples:generate_robust_em.py")
@pytest.mark.parametrize("seed", [0, 1])
def test_rem_restarts_delta_u_at_every_generation_and_regenerates_on_the_final_model(seed):
    """CausalLearning/robust-unlearnable-examples ``generate_robust_em.py`` / ``attacks/robust_workers.py``
    (``RobustMinimaxPGDDefender.perturb``): each training step trains on noise generated for its batch
    from a fresh U[−ε, ε] start on the current surrogate, and ``regenerate_def_noise`` makes the released
    noise afresh on the final surrogate. With one descent step of α = ε/2, no augmentation and no
    adversary, on a two-class linear surrogate the step direction is known from its weights, so every
    training batch and the released noise must be fresh one-step results (checked in distribution)."""
    data, budget = two_class_data(seed=seed), Budget("linf", 0.05)
    eps, alpha = budget.eps, 0.5 * budget.eps
    torch.manual_seed(seed)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # (training inputs, weights) at each training step

    def record(module, inputs, output):
        if module.training:  # generation calls and the adversary run in eval mode
            seen.append((inputs[0].detach().clone(), module.fc.weight.detach().clone()))

    fixed = Fixed(model=Linear2(36), hook=record)
    rem = RobustErrorMinimizing(max_rounds=4, train_steps=3, pgd_steps=1, step_fraction=0.5, samples=1,
                                adv_fraction=0.0, crop_fraction=0.0, flip=False)
    ctx = context(data, seed, budget, architecture=fixed, recipe=Recipe(epochs=1, batch_size=40, lr=0.5))
    out = rem.poison(data, ctx)
    check_poison(data.x, out, budget)
    assert len(fixed.built) == 1 and len(seen) == 12  # one surrogate, 4 rounds × 3 training steps
    for step, (inputs, weight) in enumerate(seen):
        rows = (inputs[:, None] - data.x[None]).flatten(2).abs().amax(2).argmin(1)  # which image each row is
        delta = inputs - data.x[rows]
        assert delta.abs().max() <= eps + 1e-6
        check_fresh_one_step(descent_coordinates(delta, data.y[rows], weight), eps, alpha, f"training step {step}")
    final_weight = fixed.built[0].fc.weight.detach()
    assert not torch.equal(final_weight, seen[0][1])  # the surrogate did train
    check_fresh_one_step(descent_coordinates(out - data.x, data.y, final_weight), eps, alpha, "released noise")


def test_rem_stopping_early_releases_the_noise_generated_for_the_stopping_test():
    # stop_error = 1: the robust error after round 1 is below it, so the run stops there and releases the
    # noise generated on that surrogate, the same noise as a one-round run generates at its end
    data, budget = two_class_data(), Budget("linf", 0.05)
    fast = dict(train_steps=2, pgd_steps=2, samples=1, adv_steps=1)
    out = RobustErrorMinimizing(max_rounds=3, stop_error=1.0, **fast).poison(data, context(data, 0, budget))
    check_poison(data.x, out, budget)
    assert torch.equal(out, RobustErrorMinimizing(max_rounds=1, **fast).poison(data, context(data, 0, budget)))
    assert not torch.equal(out, RobustErrorMinimizing(max_rounds=3, **fast).poison(data, context(data, 0, budget)))


# --- TAP and HYPO: sign descent on a fixed clean-trained model ------------------------------------------


def released_sign_descent(model: nn.Module, x: torch.Tensor, start: torch.Tensor, labels: torch.Tensor,
                          eps: float, alpha: float, steps: int) -> torch.Tensor:
    """The released step of both: x' ← clip(x + clamp(x' − α·sign(∇ CE(f(x'), label)) − x, −ε, ε), 0, 1)
    (forgemaster_base.py ``_pgd_step``: δ ← δ − τ·sign(∇δ), then the ε-box, then the image range;
    Delusive-Adversary attacks/step.py ``LinfStep``: the same on x, then clamp to [0, 1])."""
    xp = (x + start).clamp(0, 1)
    for _ in range(steps):
        z = xp.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(z), labels), z)
        xp = (x + (z.detach() - alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return xp


@pytest.mark.reference("poisoner", "tap", source="lhfowl/adversarial_poisons:village/shop/forgemaster_targeted.py")
def test_tap_is_the_released_targeted_pgd_towards_the_next_label():
    """lhfowl/adversarial_poisons ``village/shop/forgemaster_targeted.py`` (``_label_map``: (y + 1) mod C)
    with ``forgemaster_base.py`` (``--attackoptim PGD``: sign steps of τ·ε, τ = 0.1, projected): replayed
    from the same uniform start on the same clean-trained model, image for image; and most images then
    are classified as the next label by the crafting model."""
    data, budget = digits(), Budget("linf", 0.25)
    tap = TargetedAdversarialPoisoning(steps=5)
    out = tap.poison(data, context(data, 0, budget))
    ctx = context(data, 0, budget)
    model = ctx.train(data).eval()  # seeded by (seed, data) only: the same crafting model
    start = random_start(tuple(data.x.shape), budget, ctx.generator)  # the first draw after it: the PGD start
    expected = released_sign_descent(model, data.x, start, (data.y + 1) % 10, budget.eps, 0.1 * budget.eps, 5)
    same = float((out - expected).abs().le(1e-6).float().mean())
    assert same > 0.995, f"{same:.4f} of the pixels match the released update"
    wide = Budget("linf", 0.5)  # 30 steps at ε = 0.5: measured 0.95 for seeds 0-2 (0.48-0.67 at ε = 0.25)
    longer = TargetedAdversarialPoisoning(steps=30).poison(data, context(data, 0, wide))
    with torch.no_grad():
        hits = float((model(longer).argmax(1) == (data.y + 1) % 10).float().mean())
    assert hits >= 0.9, hits


@pytest.mark.reference("poisoner", "hypo", source="TLMichael/Delusive-Adversary:poison.py")
def test_hypo_is_the_released_p2_descent_from_the_clean_image():
    """TLMichael/Delusive-Adversary ``poison.py`` (``batch_poison`` with ``adv_or_hyp='hyp'``: the true
    label, ``LinfStep`` of size ε/5 from the clean image, projected, clamped): replayed on the same
    clean-trained model, image for image; the crafting model's loss on the poisons falls."""
    data, budget = digits(), Budget("linf", 0.25)
    out = HypocriticalPerturbation(steps=5).poison(data, context(data, 0, budget))
    model = context(data, 0, budget).train(data).eval()
    expected = released_sign_descent(model, data.x, torch.zeros_like(data.x), data.y, budget.eps,
                                     0.2 * budget.eps, 5)
    same = float((out - expected).abs().le(1e-6).float().mean())
    assert same > 0.995, f"{same:.4f} of the pixels match the released update"
    with torch.no_grad():
        assert F.cross_entropy(model(out), data.y) < 0.5 * F.cross_entropy(model(data.x), data.y)
