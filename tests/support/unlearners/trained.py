"""Helpers shared by unlearners/test_cf_k.py, unlearners/test_finetune.py, unlearners/test_gradient_ascent.py, unlearners/test_l1_sparse.py, unlearners/test_neggrad_plus.py, unlearners/test_random_label.py, unlearners/test_rurk.py, unlearners/test_salun.py, unlearners/test_scrub.py, unlearners/test_ssd.py."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from dememo.testing import tiny_class_task, tiny_context, tiny_splits, tiny_task


def _trained(seed=0, task="class"):
    splits = tiny_splits(seed=seed)
    ctx = tiny_context(splits, seed=seed, budget=None)
    model = ctx.train(splits.train)
    return model, (tiny_class_task(splits) if task == "class" else tiny_task(splits)), splits


def _batches(x, y, size):
    return [(x[s : s + size], y[s : s + size]) for s in range(0, len(y), size)]


def _params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


ONE_BATCH = dict(batch_size=10_000, momentum=0.0, weight_decay=0.0, schedule="constant")


def _first_step(unlearner, seed=0, num_classes=3):
    from dememo.training import Recipe

    splits = tiny_splits(seed=seed, num_classes=num_classes)
    model = tiny_context(splits, seed=seed, budget=None).train(splits.train)
    task = tiny_task(splits, seed=seed)
    ctx = tiny_context(splits, seed=seed, budget=None, recipe=Recipe(epochs=1, lr=0.05, **ONE_BATCH))
    after = unlearner.unlearn(copy.deepcopy(model), task, ctx)
    return model, task, after


def _sgd_step(model, objective, lr):
    """θ − lr·∇objective(θ) (train mode, as the released loops; the tiny MLP has no dropout or BatchNorm)."""
    model = copy.deepcopy(model).train()
    params = list(model.parameters())
    grads = torch.autograd.grad(objective(model), params)
    return torch.cat([(p - lr * g).detach().reshape(-1) for p, g in zip(params, grads, strict=True)])


def _ce(model, data, labels=None):
    return F.cross_entropy(model(data.x), data.y if labels is None else labels)
