"""Helpers shared by unlearners/test_fisher.py, unlearners/test_fisher_family.py, unlearners/test_influence.py, unlearners/test_ssd.py."""

from __future__ import annotations

import copy

import torch

from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo_plugins.unlearners import _fisher

import support.unlearning as kit


def _unlearn(unlearner, seed=0):
    s = kit.setting("noisy-shapes", seed, "class", (0,))
    return unlearner.unlearn(copy.deepcopy(s.original), s.given(unlearner), s.context()), s


def _other_classes(s):
    test = s.splits.test
    return test.subset((test.y != 0).nonzero().squeeze(1), "other-classes")


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for _, p in _fisher.trainable(model)])


def _tiny(seed=0):
    splits = tiny_splits(seed=seed)
    ctx = tiny_context(splits, seed=seed, budget=None)
    return ctx.train(splits.train), tiny_task(splits), splits
