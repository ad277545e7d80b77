"""The ``retrain`` unlearner (plugins/dememo_plugins/unlearners/retrain.py): behaviour tests and reference checks."""

from __future__ import annotations

import pytest
import torch

from dememo.context import standard_training
from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo_plugins.unlearners.retrain import Retrain

from support.reference_rows import _same_weights


def test_retrain_never_needs_the_forget_set_and_equals_standard_training():
    splits = tiny_splits()
    task = tiny_task(splits)
    ctx = tiny_context(splits, budget=None)
    model = Retrain().unlearn(None, task, ctx)
    again = tiny_context(splits, budget=None).train(task.retain)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


@pytest.mark.reference("unlearner", "retrain", source="paper: Fan et al. ICLR 2024 (SalUn), §5: 'Retrain' = training "
                       "from scratch on the retain set D_r with the original recipe")
def test_retrain_is_standard_training_on_the_retain_set_and_ignores_the_forget_set():
    splits = tiny_splits()
    task = tiny_task(splits, seed=1)
    model = standard_training(tiny_context(splits), splits.train)[0]
    retrained = Retrain().unlearn(model, task, tiny_context(splits, seed=2))
    assert _same_weights(retrained, standard_training(tiny_context(splits, seed=2), task.retain)[0])
    # the forget set's images and the model it is given change nothing
    scrambled = task.__class__(retain=task.retain, forget=task.forget.with_images(torch.rand_like(task.forget.x), "scrambled"),
                               val=task.val)
    other = standard_training(tiny_context(splits, seed=9), splits.train)[0]
    assert _same_weights(Retrain().unlearn(other, scrambled, tiny_context(splits, seed=2)), retrained)
    # and it is not the full-data model
    assert not _same_weights(retrained, standard_training(tiny_context(splits, seed=2), splits.train)[0])
