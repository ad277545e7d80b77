"""boundary-shrink, boundary-expand and spotter together: class-level forgetting on the embedded data, determinism, parameters, declarations.

boundary-shrink, boundary-expand and spotter: class-level forgetting on the embedded data.

Measured (seed 0, class 0 forgotten, defaults; the kit's quick-suite recipes; "other" = test accuracy on
the classes that remain): retrained models have forget accuracy 0 and other-class accuracy 0.97 (digits)
/ 0.83 (noisy-shapes); finetune (retain only) leaves digits' forget accuracy at 1.0 (gap 0.52) and
noisy-shapes' at 0.33 (gap 0.14).

- digits: all three reach forget accuracy 0 with other-class accuracy 0.93–0.96, gap ≤ 0.02.
- noisy-shapes: forget accuracy ≤ 0.03 for all three; other-class accuracy 0.80 (spotter, gap 0.02),
  0.67 (boundary-shrink, gap 0.09), 0.55 (boundary-expand, gap 0.14): the forget-only fine-tuning of the
  two boundary methods shifts predictions toward the absorbing classes on this weak-signal data.
- lr 0.03 collapses every method on digits (test accuracy 0.24–0.42).
- spotter's dispersion term (λ₂ = 10 vs 0) lowers the forget features' same-class cosine similarity on
  noisy-shapes from 0.92 to 0.81.
"""

from __future__ import annotations

import copy

import pytest
import torch

from dememo.training import accuracy
from dememo_plugins.unlearners.boundary_expand import BoundaryExpand
from dememo_plugins.unlearners.boundary_shrink import BoundaryShrink
from dememo_plugins.unlearners.spotter import Spotter

from support.unlearners.class_forgetting import same, state
from support.unlearning import measure, setting

METHODS = {"boundary-shrink": BoundaryShrink, "boundary-expand": BoundaryExpand, "spotter": Spotter}


def other_classes(s, forgotten=(0,)):
    test = s.splits.test
    keep = ~torch.isin(test.y, torch.tensor(forgotten, device=test.y.device))
    return test.subset(keep.nonzero().flatten(), "other-classes")


@pytest.mark.parametrize("name", list(METHODS))
def test_digits_class_forgetting_matches_retrain(name):
    s = setting("digits", 0, "class", (0,))
    r = measure(METHODS[name](), "digits", 0, "class", (0,))
    assert r["forget_acc"] <= 0.05  # retrain: 0; original and finetune: 1.0
    assert accuracy(r["model"], other_classes(s)) >= 0.9  # measured 0.93-0.96 (retrain 0.97)
    assert r["avg_gap"] < 0.05  # finetune: 0.52


# measured at seed 0: other-class accuracy / avg gap
NOISY = {"spotter": (0.75, 0.05), "boundary-shrink": (0.55, 0.15), "boundary-expand": (0.4, 0.25)}


@pytest.mark.parametrize("name", list(METHODS))
def test_noisy_shapes_class_forgetting(name):
    s = setting("noisy-shapes", 0, "class", (0,))
    r = measure(METHODS[name](), "noisy-shapes", 0, "class", (0,))
    other_min, gap_max = NOISY[name]
    assert r["forget_acc"] <= 0.1  # original 0.95, retrain 0
    assert accuracy(r["model"], other_classes(s)) >= other_min  # chance is 0.11; retrain 0.83, original 0.91
    assert r["avg_gap"] < gap_max  # original's gap ≈ 0.48


@pytest.mark.parametrize("name", list(METHODS))
def test_too_large_a_learning_rate_destroys_the_model(name):
    r = measure(METHODS[name](lr=0.03), "digits", 0, "class", (0,))
    assert r["test_acc"] < 0.6  # measured 0.24-0.42, against 0.85 at the default


@pytest.mark.parametrize("name", list(METHODS))
def test_deterministic_under_a_seed(name):
    s = setting("digits", 0, "class", (0,))
    a = METHODS[name]().unlearn(copy.deepcopy(s.original), s.task, s.context())
    b = METHODS[name]().unlearn(copy.deepcopy(s.original), s.task, s.context())
    assert same(state(a), state(b))


@pytest.mark.parametrize("cls, params, match", [
    (BoundaryShrink, {"eps": 0.0}, "eps"), (BoundaryShrink, {"lr": -1.0}, "lr"),
    (BoundaryShrink, {"epochs": 0}, "epochs"),
    (BoundaryExpand, {"lr": 0.0}, "lr"), (BoundaryExpand, {"momentum": 1.0}, "momentum"),
    (Spotter, {"kd_weight": 1.5}, "kd_weight"), (Spotter, {"dispersion_weight": -1.0}, "dispersion_weight"),
    (Spotter, {"eps": 2.0}, "eps"), (Spotter, {"pgd_steps": 3, "pgd_step": 0.0}, "pgd_step"),
])
def test_parameter_validation(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(**params)


def test_declared_forget_kinds_and_search_spaces():
    assert BoundaryExpand.forget_kinds == ("class",) and Spotter.forget_kinds == ("class",)
    assert "random" in BoundaryShrink.forget_kinds
    for cls in METHODS.values():
        space = cls.search_space
        n = 1
        for key, values in space.items():
            assert getattr(cls(), key) in values  # the default is among the values tried
            n *= len(values)
        assert 2 <= n <= 12
