"""The ``lsp`` poisoner (plugins/dememo_plugins/poisoners/lsp.py): behaviour tests and reference checks.

Model-free availability poisoners (LSP, AR, OPS, CUDA) do what their papers and docstrings say.

- LSP: github.com/dayu11/Availability-Attacks-Create-Shortcuts, ``synthetic_perturbations/cifar_train.py``.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given

from dememo.budget import Budget
from dememo.testing import tiny_context
from dememo_plugins.poisoners.lsp import LinearSeparablePerturbation

from support.poisoners.model_free import (  # noqa: F401 (pytest fixtures, used as arguments)
    PROPERTY,
    classes,
    clean_accuracy,
    make_data,
    noisy_shapes_accuracy,
    run,
    seeds,
    shapes,
)
from support.poisoners.model_free_reference import grey_data


@PROPERTY
@given(shape=shapes, k=classes, seed=seeds)
def test_lsp_without_spread_gives_every_image_of_a_class_the_same_patch_pattern(shape, k, seed):
    grey = make_data(*shape, k, seed, value=0.5)
    budget = Budget("l2", 0.05 * shape[1])  # small enough that 0.5 + δ is never clipped
    delta = run(LinearSeparablePerturbation(cluster_std=0.0), grey, budget, seed) - grey.x
    for c in range(k):
        rows = delta[grey.y == c]
        assert torch.allclose(rows, rows[0].expand_as(rows), atol=1e-6)
    p = max(1, shape[1] // 4)  # the default patch: constant over each p×p block
    blocks = delta.unfold(2, p, p).unfold(3, p, p)
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks), atol=1e-6)


def test_lsp_at_its_l2_budget_leaves_noisy_shapes_learnable(clean_accuracy):
    # measured 0.75-0.92 over seeds against clean 0.91-0.95: the synthetic patches compete with class
    # templates of the same scale and do not make the data unlearnable at L2 0.5 (see lsp.py)
    assert 0.6 < noisy_shapes_accuracy(LinearSeparablePerturbation()) <= clean_accuracy + 0.03


@pytest.mark.reference("poisoner", "lsp",
                       source="dayu11/Availability-Attacks-Create-Shortcuts:synthetic_perturbations/cifar_train.py")
def test_lsp_is_the_released_synthetic_patch_noise():
    """dayu11/Availability-Attacks-Create-Shortcuts, synthetic_perturbations/cifar_train.py (with
    util.normalize_l2norm): one synthetic point per image from its class's cluster, reshaped to a
    ceil(32 / patchsize)² grid per channel, each value repeated over a patchsize × patchsize patch, cropped
    to the image, scaled to L2 norm exactly ε, added and clipped. Checked on the plugin's δ: the default
    patch is 8 at 32×32 (the code's default), δ is the patch expansion of a grid (loops below), every ‖δ_i‖₂
    is ε, the grid points of different classes are linearly separable (least squares on one-hot targets
    classifies all of them) and, sample-wise, the points of one class differ."""
    from dememo_plugins.poisoners.lsp import LinearSeparablePerturbation

    for size, patch, eps in [(32, 8, 1.0), (10, 4, 0.3)]:  # default grid; a patch that does not divide
        data = grey_data(3, size, 4, 6)
        budget = Budget("l2", eps)
        lsp = LinearSeparablePerturbation(patch_size=None if size == 32 else patch)
        delta = (lsp.poison(data, tiny_context(seed=2, budget=budget)) - data.x).double()
        cells = -(-size // patch)
        grid = delta[:, :, ::patch, ::patch]  # each patch's top-left value
        assert grid.shape[-1] == cells
        expanded = torch.zeros_like(delta)
        for i, j in itertools.product(range(size), range(size)):
            expanded[:, :, i, j] = grid[:, :, i // patch, j // patch]
        assert torch.allclose(delta, expanded, atol=1e-6)
        norms = delta.flatten(1).norm(dim=1)
        assert torch.allclose(norms, torch.full_like(norms, eps), atol=1e-5)
        points = torch.cat([grid.flatten(1), torch.ones(len(grid), 1, dtype=torch.float64)], 1)
        onehot = torch.nn.functional.one_hot(data.y, 4).double()
        weights = torch.linalg.lstsq(points, onehot).solution
        assert torch.equal((points @ weights).argmax(1), data.y)  # linearly separable by class
        same = grid[data.y == 0].flatten(1)
        assert not torch.allclose(same[0], same[1])  # a fresh point per image
