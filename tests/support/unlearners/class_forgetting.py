"""Helpers shared by unlearners/test_class_forgetting_family.py, unlearners/test_spotter.py."""

from __future__ import annotations

import torch


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
