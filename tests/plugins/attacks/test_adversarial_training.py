"""The ``adversarial-training`` attack (plugins/dememo_plugins/attacks/adversarial_training.py): behaviour tests and reference checks.

- adversarial-training: Madry et al.'s L∞ PGD in MadryLab/cifar10_challenge, ``pgd_attack.py``
  (``LinfPGDAttack.perturb``; ``config.json``: ε = 8, 10 steps of 2 on the 0–255 scale, random start).

grayscale / jpeg / bit-depth are data transforms: tested as transforms (luma, a real JPEG round trip
bit-identical to PIL's, the quantisation grid) and for the shortcut each one squeezes out.
adversarial-training is tested through its perturbation function (step ε/4, δ in the ball, eval-mode
search, loss increases). early-stop is tested for returning the best-holdout epoch's weights and for
never looking at the monitor.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dememo
from dememo.budget import Budget, per_sample_norm
from dememo.pgd import project, random_start
from dememo.testing import tiny_context, tiny_splits
from dememo.training import Recipe
from dememo_plugins.attacks.adversarial_training import AdversarialTraining

from support.attacks.learner import gen
from support.attacks.transforms import images


def madry_linf_pgd(model, x_nat, y, start, eps, steps, step_size):
    """MadryLab/cifar10_challenge: pgd_attack.py, LinfPGDAttack.perturb, transcribed (0–1 scale): from the
    random start x_nat + U[−ε, ε], repeat: x += a·sign(∇_x xent); clip to [x_nat − ε, x_nat + ε]; clip
    to the valid pixel range."""
    x = x_nat + start
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        x = x.detach() + step_size * grad.sign()
        x = torch.maximum(torch.minimum(x, x_nat + eps), x_nat - eps)
        x = x.clamp(0, 1)
    return x - x_nat


@pytest.mark.reference("attack", "adversarial-training", source="MadryLab/cifar10_challenge:pgd_attack.py")
def test_adversarial_training_perturbation_is_madrys_pgd(monkeypatch):
    """The inner maximisation equals a transcription of Madry et al.'s LinfPGDAttack.perturb with the
    same random start, at their CIFAR-10 settings (config.json: ε = 8/255, 10 steps of 2/255 = ε/4).
    Images are kept ε away from 0 and 1 so that dememo's clipping of the random start itself (Madry's
    first gradient is taken at the unclipped start) cannot matter."""
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.Tanh(), nn.Linear(16, 4)).double()
    x = 8 / 255 + (1 - 16 / 255) * torch.rand(32, 3, 4, 4, generator=gen(0), dtype=torch.float64)
    y = torch.randint(0, 4, (32,), generator=gen(1))
    plugin = AdversarialTraining()
    assert (plugin.eps, plugin.steps, plugin.alpha) == (8 / 255, 10, 2 / 255)
    start = (2 * torch.rand(x.shape, generator=gen(2), dtype=torch.float64) - 1) * plugin.eps
    monkeypatch.setattr(dememo.pgd, "random_start", lambda shape, budget, g: start.clone())
    got = plugin.perturb(model, x, y, gen(3))
    expected = madry_linf_pgd(model, x, y, start, plugin.eps, plugin.steps, plugin.alpha)
    assert torch.allclose(got, expected, atol=1e-9), (got - expected).abs().max()
    assert got.abs().max() <= plugin.eps + 1e-12 and (got.abs() > plugin.eps - 1e-9).float().mean() > 0.5  # mostly saturated


class Linear(torch.nn.Module):
    def __init__(self, shape=(3, 4, 4), k=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = torch.nn.Linear(int(np.prod(shape)), k)
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("linf", 4 / 255), ("l2", 0.5)])
def test_at_step_is_a_quarter_of_eps_and_delta_stays_in_the_ball(norm, eps):
    at = AdversarialTraining(eps=eps, norm=norm, steps=1)
    assert at.alpha == pytest.approx(eps / 4)
    model = Linear()
    x, y = 0.1 + 0.8 * images(8, 3, 4, 0), torch.arange(8) % 3
    delta = at.perturb(model, x, y, torch.Generator().manual_seed(5))
    # recompute the one step by hand from the same random start
    budget = Budget(norm, eps)
    d0 = project(random_start(tuple(x.shape), budget, torch.Generator().manual_seed(5)), budget, x).requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x + d0), y, reduction="sum"), d0)
    d0 = d0.detach()
    if norm == "linf":
        expected = d0 + eps / 4 * g.sign()
    else:
        expected = d0 + eps / 4 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert torch.allclose(delta, project(expected, budget, x), atol=1e-6)
    assert (per_sample_norm(delta, norm) <= eps + 1e-5).all()


def test_at_perturbation_raises_the_loss_in_eval_mode_and_restores_train_mode():
    at = AdversarialTraining(steps=10)
    model = Linear()
    model.train()
    x, y = images(16, 3, 4, 1), torch.arange(16) % 3
    delta = at.perturb(model, x, y, torch.Generator().manual_seed(0))
    assert delta.abs().max() <= 8 / 255 + 1e-6 and ((x + delta) >= 0).all() and ((x + delta) <= 1).all()
    assert model.modes and not any(model.modes), "the PGD search runs in eval mode"
    assert model.training, "train mode is restored for the update"
    with torch.no_grad():
        assert F.cross_entropy(model(x + delta), y) > F.cross_entropy(model(x), y) + 0.01
    loss = at.loss(torch.Generator().manual_seed(0))(model, x, y)
    loss.backward()
    assert loss.ndim == 0 and model.fc.weight.grad is not None
    for bad in ({"steps": 0}, {"eps": 0.0}, {"norm": "l0"}, {"step_fraction": -1.0}):
        with pytest.raises(ValueError):
            AdversarialTraining(**bad)


def test_at_trains_a_model_and_records_history():
    splits = tiny_splits()
    ctx = tiny_context(splits, budget=None, recipe=Recipe(epochs=3, batch_size=32, lr=0.05))
    model, history = AdversarialTraining(steps=2).train(dememo.LearnerData(splits.train, splits.val, splits.test), ctx)
    assert len(history.column("eval_acc")) == 3
    assert ctx.accuracy(model, splits.test) > 1 / 3 + 0.1
