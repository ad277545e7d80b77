"""Helpers shared by unlearners/test_l1_sparse.py, unlearners/test_random_label.py, unlearners/test_salun.py."""

from __future__ import annotations

import copy

import support.unlearning as kit


def _unlearn(unlearner, dataset, kind="random", seed=0, task=None):
    s = kit.setting(dataset, seed, kind)
    task = s.given(unlearner) if task is None else task
    return unlearner.unlearn(copy.deepcopy(s.original), task, s.context()), s


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}
