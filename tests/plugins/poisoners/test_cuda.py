"""The ``cuda`` poisoner (plugins/dememo_plugins/poisoners/cuda.py): behaviour tests and reference checks.

Model-free availability poisoners (LSP, AR, OPS, CUDA) do what their papers and docstrings say.

Reference checks (issue 17) for the model-free poisoners: each plugin against its authors' released
code, whose formula is transcribed here independently as plain loops (no code shared with the plugins),
plus, for CUDA and OPS, the properties that distinguish the published method from their version 1.

- CUDA: github.com/vinusankars/Convolution-based-Unlearnability, ``final_filter_unlearnable.py``
  (``get_filter_unlearnable``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import dememo
from dememo.budget import Budget, check_poison
from dememo.testing import tiny_context
from dememo_plugins.datasets.noisy_shapes import NoisyShapes
from dememo_plugins.poisoners.cuda import ConvolutionUnlearnable

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
from support.poisoners.model_free_reference import PROPERTY as REFERENCE_PROPERTY
from support.poisoners.model_free_reference import random_data


@PROPERTY
@given(shape=shapes, k=classes, seed=seeds, value=st.floats(0.0, 1.0))
def test_cuda_is_one_filter_per_class_in_range_and_seeded(shape, k, seed, value):
    budget = Budget("none", float("inf"))
    const = make_data(*shape, k, seed, value=value)
    out = run(ConvolutionUnlearnable(), const, budget, seed)
    for c in range(k):  # equal inputs, equal filters ⇒ equal outputs within a class
        rows = out[const.y == c]
        assert torch.equal(rows, rows[0].expand_as(rows))
    noisy = make_data(*shape, k, seed)
    out = run(ConvolutionUnlearnable(), noisy, budget, seed)
    assert torch.equal(out, run(ConvolutionUnlearnable(), noisy, budget, seed))
    assert not torch.equal(out, run(ConvolutionUnlearnable(), noisy, budget, seed + 1))


def test_cuda_applies_the_sampled_filter():
    data = make_data(3, 8, 3, 0)
    ctx = tiny_context(seed=5, budget=Budget("none", float("inf")))
    filters = ConvolutionUnlearnable().filters(3, ctx)  # one filter per class, shared by the channels
    assert ((filters >= 0) & (filters <= 1)).all()
    assert ((filters == 1.0).flatten(1).sum(1) == 1).all()  # one tap per filter is the centre value
    out = ConvolutionUnlearnable().poison(data, tiny_context(seed=5, budget=Budget("none", float("inf"))))
    i = 4  # image 4 is class 1: every channel filtered by that class's filter, zero padded, / its maximum
    ref = torch.nn.functional.conv2d(data.x[i][:, None], filters[1][None, None], padding=1)[:, 0]
    assert torch.allclose(out[i], ref / ref.max(), atol=1e-6)


def test_cuda_drops_clean_accuracy_to_chance_on_noisy_shapes(clean_accuracy):
    assert noisy_shapes_accuracy(ConvolutionUnlearnable()) < 0.25 < clean_accuracy


NONE = Budget("none", float("inf"))


def released_cuda_image(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """One image (C×H×W) through the released construction, as loops: the class's k×k kernel on every
    channel (a grouped ``Conv2d`` with ``padding = k // 2`` zeros and zero bias, i.e. a cross-correlation),
    then the whole image divided by its maximum (``img / img.max()``)."""
    c, h, w = image.shape
    k = kernel.shape[0]
    r = k // 2
    out = np.zeros((c, h, w))
    for ch, i, j in itertools.product(range(c), range(h), range(w)):
        for a, b in itertools.product(range(k), range(k)):
            u, v = i + a - r, j + b - r
            if 0 <= u < h and 0 <= v < w:
                out[ch, i, j] += kernel[a, b] * image[ch, u, v]
    return out / out.max()


@pytest.mark.reference("poisoner", "cuda",
                       source="vinusankars/Convolution-based-Unlearnability:final_filter_unlearnable.py")
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_cuda_is_the_released_filter_then_divide_by_the_maximum(kernel_size):
    """vinusankars/Convolution-based-Unlearnability, final_filter_unlearnable.py (get_filter_unlearnable):
    per class one filter with taps U[0, blur] and one tap at a random (row, column) set to the centre value,
    copied to all three channels; each image of the class is convolved with it and divided by its own
    maximum. The plugin's output must equal that construction, computed here by loops from its filters."""
    data = random_data(3, 6, 3, 2, seed=11)
    poisoner = ConvolutionUnlearnable(kernel_size=kernel_size)
    filters = poisoner.filters(3, tiny_context(seed=4, budget=NONE)).numpy()
    out = poisoner.poison(data, tiny_context(seed=4, budget=NONE))  # the same seed: the same filters
    assert filters.shape == (3, kernel_size, kernel_size)
    for f in filters:  # the released sampling: one tap at the centre value, the rest in [0, blur)
        assert (f == 1.0).sum() == 1 and ((f == 1.0) | ((f >= 0) & (f < 0.3))).all()
    for i in range(len(data)):
        ref = released_cuda_image(data.x[i].double().numpy(), filters[int(data.y[i])])
        np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-6)


def test_cuda_centre_tap_is_anywhere_and_other_taps_uniform():
    """The released code puts the centre value at (randint(k), randint(k)), not in the middle, and draws
    the other taps from U[0, blur]: over many classes every position holds the centre about 1/k² of the
    time and the other taps average blur / 2."""
    for k, blur in [(3, 0.3), (5, 0.5)]:
        f = ConvolutionUnlearnable(kernel_size=k, blur=blur).filters(4000, tiny_context(seed=0, budget=NONE))
        centre = f.flatten(1) == 1.0
        assert (centre.sum(1) == 1).all()
        share = centre.double().mean(0)
        assert ((share - 1 / k**2).abs() < 4 * math.sqrt(1 / k**2 / 4000)).all(), share  # about 4 std errors
        rest = f.flatten(1)[~centre]
        assert 0 <= float(rest.min()) and float(rest.max()) < blur
        assert abs(float(rest.mean()) - blur / 2) < 0.01 * blur


@REFERENCE_PROPERTY
@given(channels=st.sampled_from([1, 3]), size=st.sampled_from([4, 8]), k=st.integers(2, 8), seed=st.integers(0, 2**16))
def test_cuda_keeps_grey_grey_and_each_image_peaks_at_one(channels, size, k, seed):
    # one filter for all channels: a grey image (equal channels) stays grey, so no class colour cast
    data = random_data(1, size, k, 2, seed)
    grey = dememo.Data.from_tensors(data.x.expand(-1, channels, -1, -1).contiguous(), data.y, k, tag=f"grey:{seed}")
    out = ConvolutionUnlearnable().poison(grey, tiny_context(seed=seed, budget=NONE))
    check_poison(grey.x, out, NONE)
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert torch.allclose(out.flatten(1).amax(1), torch.ones(len(out)))  # divided by its maximum, not clipped


def test_cuda_on_noisy_shapes_saturates_almost_nothing_and_casts_no_colour():
    """The earlier per-channel, hard-clipped version saturated 53 % of noisy-shapes' values and gave each
    class a colour cast (0.050 mean channel offset of the change); the released construction reaches 1 only
    at each image's maximum (0.13 % of values) and its cast is 0.002 (only the content's own colours)."""
    splits = NoisyShapes().load(None, False)
    data = splits.train
    out = ConvolutionUnlearnable().poison(data, tiny_context(splits, seed=0, budget=NONE))
    assert torch.allclose(out.flatten(1).amax(1), torch.ones(len(out)))
    assert float((out >= 1 - 1e-6).float().mean()) < 0.01
    casts = []
    for c in range(data.num_classes):
        change = (out - data.x)[data.y == c].mean((0, 2, 3))  # per channel
        casts.append(float((change - change.mean()).abs().max()))
    assert max(casts) < 0.01, casts
