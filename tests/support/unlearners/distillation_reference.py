"""Helpers shared by unlearners/test_bad_teacher.py, unlearners/test_distillation_family.py, unlearners/test_rurk.py, unlearners/test_scrub.py."""

from __future__ import annotations

import copy

import torch

from dememo import forget
from dememo.testing import tiny_context, tiny_splits, tiny_task


def _class_task(s, classes=(0,)):
    """Class forgetting over the random setting's original model (trained on the whole train split), without
    training another original and retrained model."""
    train = s.splits.train
    mask = forget.class_mask(train.y, classes, train.num_classes, s.dataset)
    return forget.split(train, mask, {"kind": "class", "classes": list(classes)}, s.seed, s.splits.val)


def _unlearn(unlearner, s, task=None):
    return unlearner.unlearn(copy.deepcopy(s.original), s.task if task is None else task, s.context())


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _tiny(seed=0):
    splits = tiny_splits()
    ctx = tiny_context(splits, seed=seed, budget=None)
    return splits, tiny_task(splits), ctx.train(splits.train)
