"""The threat model is enforced by the harness: anything outside the ball or the pixel range is an error."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.budget import TOLERANCE, Budget, check_poison, per_sample_norm
from dememo.errors import BudgetViolation

FAST = settings(max_examples=50, deadline=None)

shapes = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5))
seeds = st.integers(0, 2**31 - 1)


def images(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), g


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


@FAST
@given(shapes, st.floats(1 / 255, 0.5), seeds)
def test_budget_accepts_linf_perturbations_clipped_into_the_ball(shape, eps, seed):
    x, g = images(shape, seed)
    delta = (torch.rand(shape, generator=g) * 2 - 1) * 2 * eps  # up to 2ε before projection
    poisoned = (x + delta.clamp(-eps, eps)).clamp(0, 1)
    check_poison(x, poisoned, Budget("linf", eps))


@FAST
@given(shapes, st.floats(1 / 255, 0.4), seeds, st.floats(10 * TOLERANCE, 0.05))
def test_budget_rejects_linf_excess_with_one_line_reason(shape, eps, seed, margin):
    x, g = images(shape, seed)
    x = x * 0.1 + 0.45  # keep x ± (ε + margin) inside [0, 1], so only the norm can fail
    poisoned = x.clone()
    n, c, h, w = (int(torch.randint(0, s, (1,), generator=g)) for s in shape)
    poisoned[n, c, h, w] += eps + margin
    with pytest.raises(BudgetViolation) as exc:
        check_poison(x, poisoned, Budget("linf", eps))
    msg = one_line(exc)
    assert "L∞" in msg and "linf norm" in msg and f"1 of {shape[0]}" in msg


def test_budget_allows_float_rounding_within_tolerance():
    x = torch.full((2, 1, 2, 2), 0.5)
    eps = 8 / 255
    check_poison(x, x + eps + TOLERANCE / 2, Budget("linf", eps))


@FAST
@given(shapes, st.floats(0.05, 2.0), seeds)
def test_budget_accepts_l2_perturbations_scaled_into_the_ball(shape, eps, seed):
    x = torch.full(shape, 0.5)
    g = torch.Generator().manual_seed(seed)
    delta = torch.randn(shape, generator=g)
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    delta = delta * (min(eps, 0.45) / norms).view(-1, 1, 1, 1)  # ‖δ‖₂ ≤ 0.45 keeps pixels in range
    check_poison(x, x + delta, Budget("l2", eps))


@FAST
@given(shapes, st.floats(0.01, 0.2), seeds)
def test_budget_rejects_l2_excess_naming_the_norm(shape, eps, seed):
    x = torch.full(shape, 0.5)
    g = torch.Generator().manual_seed(seed)
    delta = torch.randn(shape, generator=g)
    delta = delta / delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1) * (eps * 1.5)
    delta = delta.clamp(-0.5, 0.5)
    if float(delta.flatten(1).norm(dim=1).max()) <= eps + TOLERANCE:
        return  # clamping shrank it back into the ball (only for pathological draws)
    with pytest.raises(BudgetViolation) as exc:
        check_poison(x, x + delta, Budget("l2", eps))
    msg = one_line(exc)
    assert "L2" in msg and "l2 norm" in msg


def test_l0_counts_pixel_positions_across_channels():
    x = torch.full((1, 3, 4, 4), 0.5)
    p = x.clone()
    p[0, :, 0, 0] = 1.0  # one position, three channels: L0 = 1
    p[0, 1, 2, 3] = 0.0  # a second position, one channel: L0 = 2
    assert per_sample_norm(p - x, "l0").tolist() == [2.0]
    check_poison(x, p, Budget("l0", 2))
    with pytest.raises(BudgetViolation) as exc:
        check_poison(x, p, Budget("l0", 1))
    assert "L0" in one_line(exc) and "l0 norm 2" in str(exc.value)


def test_l0_ignores_changes_below_tolerance():
    x = torch.full((2, 1, 3, 3), 0.5)
    check_poison(x, x + TOLERANCE / 2, Budget("l0", 0))


@FAST
@given(shapes, seeds, st.integers(0, 3))
def test_l0_norm_is_the_number_of_changed_positions(shape, seed, k):
    n, c, h, w = shape
    x = torch.full(shape, 0.5)
    g = torch.Generator().manual_seed(seed)
    k = min(k, h * w)
    p = x.clone()
    for i in range(n):
        pos = torch.randperm(h * w, generator=g)[:k]
        p[i, :, pos // w, pos % w] = 0.9
    assert per_sample_norm(p - x, "l0").tolist() == [float(k)] * n


def test_norm_none_checks_only_range_and_finiteness():
    x = torch.zeros(2, 1, 2, 2)
    check_poison(x, torch.ones_like(x), Budget("none", 0.0))  # any change inside [0, 1] is fine
    with pytest.raises(BudgetViolation):
        check_poison(x, torch.full_like(x, 1.5), Budget("none", 0.0))
    with pytest.raises(BudgetViolation):
        check_poison(x, torch.full_like(x, float("nan")), Budget("none", 0.0))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("norm", ["linf", "l2", "l0", "none"])
def test_budget_rejects_non_finite_values(bad, norm):
    x = torch.full((3, 1, 2, 2), 0.5)
    p = x.clone()
    p[1, 0, 1, 0] = bad
    with pytest.raises(BudgetViolation) as exc:
        check_poison(x, p, Budget(norm, 1.0))
    assert "1 poisoned images contain NaN or Inf" in one_line(exc)


@pytest.mark.parametrize("value", [-0.01, 1.01, -1.0, 2.0])
def test_budget_rejects_pixels_outside_unit_range(value):
    x = torch.full((2, 1, 2, 2), 0.5)
    p = x.clone()
    p[0, 0, 0, 0] = value
    with pytest.raises(BudgetViolation) as exc:
        check_poison(x, p, Budget("linf", 10.0))
    assert "outside the valid range [0, 1]" in one_line(exc)


def test_budget_rejects_shape_mismatch_and_non_tensors():
    x = torch.full((2, 1, 2, 2), 0.5)
    with pytest.raises(BudgetViolation, match=r"shape \(2, 1, 2, 3\), expected \(2, 1, 2, 2\)"):
        check_poison(x, torch.full((2, 1, 2, 3), 0.5), Budget("linf", 1.0))
    with pytest.raises(BudgetViolation, match="shape"):
        check_poison(x, x[:1], Budget("linf", 1.0))
    with pytest.raises(BudgetViolation, match="returned ndarray"):
        check_poison(x, x.numpy(), Budget("linf", 1.0))


def test_budget_checks_in_the_clean_dtype():
    x = torch.full((1, 1, 2, 2), 0.5)
    check_poison(x, x.double() + 0.01, Budget("linf", 0.02))
def test_budget_accepts_empty_data():
    x = torch.zeros(0, 1, 2, 2)
    check_poison(x, x.clone(), Budget("linf", 0.1))


def test_budget_describe_names_norm_and_radius():
    assert Budget("linf", 8 / 255).describe() == "L∞ ≤ 0.03137 (8/255)"
    assert Budget("l2", 0.5).describe() == "L2 ≤ 0.5"
    assert Budget("l0", 3).describe() == "L0 ≤ 3"
    assert "unbounded" in Budget("none", 0).describe()


def test_per_sample_norm_rejects_unknown_norm():
    with pytest.raises(ValueError):
        per_sample_norm(torch.zeros(1, 1, 1, 1), "none")
