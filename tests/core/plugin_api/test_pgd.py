"""The core PGD facility: projection, steps and the direction of the optimisation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.budget import TOLERANCE, Budget, check_poison, per_sample_norm
from dememo.pgd import cross_entropy_loss, pgd, pgd_dataset, project, random_start, step

PROPERTY = settings(max_examples=30, deadline=None)
budgets = st.one_of(
    st.builds(Budget, st.just("linf"), st.floats(1e-3, 0.5)),
    st.builds(Budget, st.just("l2"), st.floats(1e-2, 3.0)),
)


def images(seed: int, n: int = 6, c: int = 3, s: int = 5) -> torch.Tensor:
    x = torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(seed))
    x[0] = 0.0  # saturated images: the range projection matters
    x[1] = 1.0
    return x


@PROPERTY
@given(budget=budgets, seed=st.integers(0, 999), scale=st.floats(0.1, 20))
def test_projection_lands_in_the_ball_and_the_image_range(budget, seed, scale):
    x = images(seed)
    delta = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1)) * scale
    out = project(delta, budget, x)
    check_poison(x, x + out, budget)
    inside = project(out, budget, x)
    assert torch.allclose(inside, out, atol=1e-6), "projection is idempotent"


@PROPERTY
@given(budget=budgets, seed=st.integers(0, 999))
def test_random_start_is_inside_the_ball(budget, seed):
    d = random_start((8, 3, 4, 4), budget, torch.Generator().manual_seed(seed))
    assert float(per_sample_norm(d, budget.norm).max()) <= budget.eps + TOLERANCE


def test_linf_step_is_alpha_times_sign_and_l2_step_has_length_alpha():
    grad = torch.tensor([[[[0.5, -2.0], [0.0, 3.0]]]])
    up = step(torch.zeros_like(grad), grad, Budget("linf", 1.0), 0.1, "max")
    assert torch.equal(up, 0.1 * grad.sign())
    down = step(torch.zeros_like(grad), grad, Budget("l2", 1.0), 0.1, "min")
    assert float(down.norm()) == pytest.approx(0.1)
    assert float((down * grad).sum()) < 0


def test_unsupported_norm_is_a_clear_error():
    with pytest.raises(ValueError, match="linf and l2"):
        project(torch.zeros(1, 1, 2, 2), Budget("l0", 1))


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_min_lowers_and_max_raises_the_loss_of_a_fixed_model(norm, eps):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 5 * 5, 4))
    x, y = images(3, n=32), torch.arange(32) % 4
    loss = cross_entropy_loss(model)
    budget = Budget(norm, eps)
    with torch.no_grad():
        clean = float(loss(x, y))
    alpha = eps / 4
    lowered = pgd(loss, x, y, budget, steps=10, alpha=alpha, direction="min")
    raised = pgd(loss, x, y, budget, steps=10, alpha=alpha, direction="max", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float(loss(x + lowered, y)) < clean < float(loss(x + raised, y))
    for d in (lowered, raised):
        check_poison(x, x + d, budget)
    assert all(p.grad is None for p in model.parameters()), "only δ is differentiated"


def test_dataset_pgd_is_batch_size_independent_without_random_start():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 5 * 5, 3))
    x, y = images(4, n=20), torch.arange(20) % 3
    kwargs = dict(steps=3, alpha=0.01, direction="min")
    a = pgd_dataset(cross_entropy_loss(model), x, y, Budget("linf", 0.03), batch_size=7, **kwargs)
    b = pgd_dataset(cross_entropy_loss(model), x, y, Budget("linf", 0.03), batch_size=20, **kwargs)
    assert torch.allclose(a, b, atol=1e-6), "summed loss: each sample's step does not depend on its batch"


def test_ensemble_loss_is_the_mean_over_models():
    torch.manual_seed(2)
    models = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)) for _ in range(3)]
    x, y = torch.rand(5, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        expected = sum(float(cross_entropy_loss(m)(x, y)) for m in models) / 3
        assert float(cross_entropy_loss(models)(x, y)) == pytest.approx(expected, rel=1e-6)
