"""The ``noisy-shapes`` dataset (plugins/dememo_plugins/datasets/noisy_shapes.py): behaviour tests and reference checks."""

from __future__ import annotations

import torch

from dememo_plugins.datasets.noisy_shapes import NoisyShapes


def test_noisy_shapes_is_deterministic_balanced_and_weak_per_pixel():
    s = NoisyShapes().load(None, False)
    assert s.train.shape == (3, 16, 16) and s.num_classes == 10
    assert torch.bincount(s.train.y).tolist() == [150] * 10
    assert s.train.fingerprint == NoisyShapes().load(None, False).train.fingerprint
    assert s.train.fingerprint != NoisyShapes(seed=1).load(None, False).train.fingerprint
    # per-pixel class signal (contrast) is far below the per-pixel noise: no single pixel tells the class
    class_means = torch.stack([s.train.x[s.train.y == k].mean(0) for k in range(10)])
    within = s.train.x[s.train.y == 0].std(0).mean()
    assert class_means.std(0).mean() < 0.5 * within
