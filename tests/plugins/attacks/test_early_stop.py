"""The ``early-stop`` attack (plugins/dememo_plugins/attacks/early_stop.py): behaviour tests and reference checks.

- early-stop: no released code; the definition (first argmax of holdout accuracy over the epochs of the
  standard run) is transcribed.

grayscale / jpeg / bit-depth are data transforms: tested as transforms (luma, a real JPEG round trip
bit-identical to PIL's, the quantisation grid) and for the shortcut each one squeezes out.
adversarial-training is tested through its perturbation function (step ε/4, δ in the ball, eval-mode
search, loss increases). early-stop is tested for returning the best-holdout epoch's weights and for
never looking at the monitor.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import dememo
from dememo.context import standard_training
from dememo.testing import tiny_context, tiny_splits
from dememo.training import Recipe
from dememo_plugins.attacks.early_stop import EarlyStop


@pytest.mark.reference("attack", "early-stop", source="paper: SoK: Unlearnability and Unlearning for Model "
                       "Dememorization (arXiv 2605.11592), early stopping / peak accuracy as a learner-side attack")
def test_early_stop_returns_the_first_best_holdout_epoch_of_the_standard_run():
    """e* = argmax_e acc(θ_e, holdout), earliest on ties, θ_e the weights after epoch e of the standard run
    (the none row's). Transcribed: record every epoch's weights of an independent standard run with the
    same seed, take the first argmax of their holdout accuracies, and compare weights."""
    splits = tiny_splits(n_train=120, n_val=40, shape=(1, 4, 4), num_classes=3)
    recipe = Recipe(epochs=6, batch_size=30)
    model, history = EarlyStop().train(dememo.LearnerData(splits.train, splits.val, splits.test),
                                       tiny_context(splits, seed=4, recipe=recipe))
    snapshots = []
    ctx = tiny_context(splits, seed=4, recipe=recipe).for_training_on(splits.train)  # the none row's run
    ctx.fit(ctx.new_model(), splits.train, after_epoch=lambda m, e: snapshots.append(copy.deepcopy(m.state_dict())))
    accs = []
    probe = ctx.new_model()
    for state in snapshots:
        probe.load_state_dict(state)
        probe.eval()
        with torch.no_grad():
            accs.append((probe(splits.val.x).argmax(1) == splits.val.y).float().mean().item())
    best = int(np.argmax(accs))  # numpy's argmax returns the first maximum
    assert [r["holdout_acc"] for r in history.epochs] == pytest.approx(accs)
    assert all(torch.equal(v, snapshots[best][k]) for k, v in model.state_dict().items())
    assert [r["chosen"] for r in history.epochs].index(1.0) == best


def test_early_stop_returns_the_best_holdout_epoch():
    """With a holdout whose labels are shifted (y+1 mod K), the best-holdout epoch is an early one; the
    returned weights are that epoch's (their holdout accuracy equals the recorded best), not the last."""
    splits = tiny_splits()
    k = splits.num_classes
    holdout = splits.val.with_images(splits.val.x, "shifted")
    holdout = dememo.Data(x=holdout.x, y=(holdout.y + 1) % k, num_classes=k, fingerprint="shifted", index=holdout.index)
    ctx = lambda: tiny_context(splits, budget=None)  # noqa: E731
    model, history = EarlyStop().train(dememo.LearnerData(splits.train, holdout, splits.test), ctx())
    accs = history.column("holdout_acc")
    chosen = [e["epoch"] for e in history.epochs if e["chosen"]]
    assert len(accs) == ctx().recipe.epochs and len(chosen) == 1
    assert chosen[0] == 1 + int(np.argmax(accs)) and chosen[0] < len(accs)
    assert ctx().accuracy(model, holdout) == max(accs)
    final, standard = standard_training(ctx(), splits.train, eval_data=splits.test)
    assert standard.column("eval_acc") == history.column("eval_acc"), "the run is the standard run"
    assert ctx().accuracy(final, holdout) == accs[-1] < max(accs)
    # the monitor never enters the choice: a monitor with wrong labels changes nothing
    wrong = dememo.Data(x=splits.test.x, y=(splits.test.y + 2) % k, num_classes=k, fingerprint="wrong", index=splits.test.index)
    again, _ = EarlyStop().train(dememo.LearnerData(splits.train, holdout, wrong), ctx())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_early_stop_run_is_the_standard_run():
    splits = tiny_splits()
    ctx = lambda: tiny_context(splits, budget=None)  # noqa: E731
    model, history = EarlyStop().train(dememo.LearnerData(splits.train, splits.val, splits.test), ctx())
    _, plain = standard_training(ctx(), splits.train, eval_data=splits.test)
    assert history.column("eval_acc") == plain.column("eval_acc"), "the same run as standard training, unperturbed"
    assert ctx().accuracy(model, splits.val) == max(history.column("holdout_acc"))
