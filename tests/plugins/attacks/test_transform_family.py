"""The data-transform attacks together (attacks/_learner.py: bit-depth, grayscale): transformed data and pairing with standard training.

Learner-side (train-stage) attacks do what their papers and docstrings say.

grayscale / jpeg / bit-depth are data transforms: tested as transforms (luma, a real JPEG round trip
bit-identical to PIL's, the quantisation grid) and for the shortcut each one squeezes out.
adversarial-training is tested through its perturbation function (step ε/4, δ in the ball, eval-mode
search, loss increases). early-stop is tested for returning the best-holdout epoch's weights and for
never looking at the monitor.

What is NOT asserted here (too slow for a unit test: one AT run on noisy-shapes is 3-11 standard
trainings): the published direction "AT recovers EM but not OPS". The numbers measured on noisy-shapes
are in the lead's report and the module docstrings.
"""

from __future__ import annotations

import torch

import dememo
from dememo.context import standard_training
from dememo.testing import tiny_context, tiny_splits
from dememo_plugins.attacks._learner import with_transformed_images
from dememo_plugins.attacks.bit_depth import BitDepth, reduce_bit_depth
from dememo_plugins.attacks.grayscale import Grayscale

from support.attacks.transforms import data_of, images


def test_transformed_data_keeps_labels_and_gets_a_new_fingerprint():
    data = data_of(images(6, 3, 4, 0))
    out = with_transformed_images(data, reduce_bit_depth(data.x, 2), "bit-depth", {"bits": 2})
    assert torch.equal(out.y, data.y) and out.fingerprint != data.fingerprint
    assert out.fingerprint == with_transformed_images(data, reduce_bit_depth(data.x, 2), "bit-depth", {"bits": 2}).fingerprint
    assert out.fingerprint != with_transformed_images(data, reduce_bit_depth(data.x, 2), "bit-depth", {"bits": 3}).fingerprint


def test_transform_attacks_are_paired_with_standard_training():
    """On one-channel data grayscale is the identity, so its run *is* the standard run (same init and
    batch order); the other transforms start from the same initial weights but see other images."""
    splits = tiny_splits()
    given = dememo.LearnerData(splits.train, splits.val, splits.test)
    ctx = lambda: tiny_context(splits, budget=None)  # noqa: E731
    standard, history = standard_training(ctx(), splits.train, eval_data=splits.test)
    gray, gray_history = Grayscale().train(given, ctx())
    assert all(torch.equal(a, b) for a, b in zip(standard.state_dict().values(), gray.state_dict().values()))
    assert gray_history.column("eval_acc") == history.column("eval_acc")
    bits, _ = BitDepth(bits=1).train(given, ctx())
    assert not all(torch.equal(a, b) for a, b in zip(standard.state_dict().values(), bits.state_dict().values()))
