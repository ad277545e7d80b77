"""Helpers shared by scorers/test_confidence.py, scorers/test_learning_curve.py, scorers/test_loss_curvature.py, scorers/test_proxy_family.py."""

from __future__ import annotations

import functools

import attrs
import torch

from dememo.context import Context, seeded_generator
from dememo.hashing import derive_seed, digest

from support.unlearning import _loaded

CPU = torch.device("cpu")


@functools.cache
def noisy_digits(seed: int = 0, fraction: float = 0.05):
    """The digits training split with a seeded ``fraction`` of labels replaced by a different class."""
    config, splits = _loaded("digits")
    train = splits.train
    g = torch.Generator().manual_seed(derive_seed("flip", seed))
    k = round(fraction * len(train))
    idx = torch.randperm(len(train), generator=g)[:k]
    y = train.y.clone()
    y[idx] = (y[idx] + torch.randint(1, train.num_classes, (k,), generator=g)) % train.num_classes
    flipped = torch.zeros(len(train), dtype=torch.bool)
    flipped[idx] = True
    data = attrs.evolve(train, y=y, fingerprint=digest([train.fingerprint, "flip", seed, fraction]))
    ctx = Context(device=CPU, seed=seed, generator=seeded_generator(derive_seed(seed, "scores"), CPU),
                  recipe=config.entry.recipe, architecture=config.architecture.obj,
                  input_shape=splits.shape, num_classes=splits.num_classes)
    return data, flipped, ctx
