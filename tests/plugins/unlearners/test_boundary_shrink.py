"""The ``boundary-shrink`` unlearner (plugins/dememo_plugins/unlearners/boundary_shrink.py): behaviour tests and reference checks.

boundary-shrink, boundary-expand and spotter: class-level forgetting on the embedded data.

- noisy-shapes: forget accuracy ≤ 0.03 for all three; other-class accuracy 0.80 (spotter, gap 0.02),
  0.67 (boundary-shrink, gap 0.09), 0.55 (boundary-expand, gap 0.14): the forget-only fine-tuning of the
  two boundary methods shifts predictions toward the absorbing classes on this weak-signal data.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dememo import Data
from dememo.testing import tiny_context, tiny_splits
from dememo.testing.fixtures import tiny_class_task
from dememo_plugins.unlearners.boundary_shrink import BoundaryShrink, nearest_wrong_labels


@pytest.mark.reference("unlearner", "boundary-shrink",
                       source="paper: Chen et al., Boundary Unlearning, CVPR 2023, and its released code (Boundary-Unlearning-Code): "
                              "boundary_unlearning.py:boundary_shrink with adv_generator.py:FGSM, bound 0.1")
def test_boundary_shrink_labels_are_the_released_fgsm_predictions_on_a_linear_model():
    """The released code labels each forget sample with the original model's prediction on its one-step FGSM
    example x' = clip(x + 0.1·sign(∇ₓ CE(f(x), y)), 0, 1). For a linear model f(x) = Wx + b the gradient is
    Wᵀ(softmax(f(x)) − e_y), so x' and the label are computed here in closed form with NumPy. Where the
    attack succeeds (prediction ≠ y) the plugin's label must equal it; where it fails the plugin takes the
    best other class (its documented deviation), never y."""
    import numpy as np

    from dememo_plugins.unlearners.boundary_shrink import nearest_wrong_labels

    g = torch.Generator().manual_seed(0)
    k, d, n = 4, 6, 200
    lin = torch.nn.Linear(d, k)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(k, d, generator=g))
        lin.bias.copy_(0.1 * torch.randn(k, generator=g))
    model = torch.nn.Sequential(torch.nn.Flatten(), lin)
    x = torch.rand(n, 1, 1, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    labels = nearest_wrong_labels(model, Data.from_tensors(x, y, k, tag="ref"), 0.1, exclude=torch.zeros(k, dtype=torch.bool))

    w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    xs, ys = x.reshape(n, d).double().numpy(), y.numpy()
    z = xs @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(k)[ys]) @ w
    x_adv = np.clip(xs + 0.1 * np.sign(grad), 0, 1)
    z_adv = x_adv @ w.T + b
    released = z_adv.argmax(1)
    best_other = np.where(np.eye(k, dtype=bool)[ys], -np.inf, z_adv).argmax(1)
    success = released != ys
    assert 0.1 < success.mean() < 0.9  # both cases occur on this draw
    assert (labels.numpy()[success] == released[success]).all()
    assert (labels.numpy()[~success] == best_other[~success]).all() and (labels.numpy() != ys).all()


def test_boundary_shrink_never_relabels_into_a_forgotten_class():
    splits = tiny_splits()  # 3 classes; forget classes 0 and 1 entirely: every relabel must be class 2
    task = tiny_class_task(splits, classes=(0, 1))
    ctx = tiny_context(splits, budget=None)
    model = ctx.train(splits.train)
    out = BoundaryShrink(lr=0.05, epochs=20).unlearn(copy.deepcopy(model), task, tiny_context(splits, budget=None))
    assert (ctx.predict(out, task.forget.x).argmax(1) == 2).float().mean() > 0.9


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6), eps=st.floats(0.01, 0.5))
def test_nearest_wrong_label_is_never_the_own_or_an_excluded_class(seed, k, eps):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, k))
    x = torch.rand(20, 3, 2, 2, generator=g)
    y = torch.randint(0, k, (20,), generator=g)
    exclude = torch.rand(k, generator=g) < 0.5
    labels = nearest_wrong_labels(model, Data.from_tensors(x, y, k), eps, exclude)
    assert (labels != y).all()
    has_candidate = (~exclude).unsqueeze(0) & (torch.arange(k).unsqueeze(0) != y.unsqueeze(1))
    assert not exclude[labels][has_candidate.any(1)].any()  # excluded only where nothing else is left
