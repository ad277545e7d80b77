"""The shared learning curve (scorers/_learning_curve.py) behind confidence, max-confidence, entropy and correctness, with their reference check."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest
import torch

from dememo.context import standard_training
from dememo.training import predict
from dememo_plugins.scorers._learning_curve import learning_curve

from support.scorers.memorization import tiny_run  # noqa: F401 (pytest fixtures, used as arguments)
from support.scorers.proxies import noisy_digits


def test_learning_curve_records_the_standard_training_run():
    """Same init and batch order as ``standard_training``: the last record is the standard model's."""
    data, _, ctx = noisy_digits()
    model, _ = standard_training(ctx, data)
    curve = learning_curve(data, ctx)
    assert curve.epochs == tuple(range(1, ctx.recipe.epochs + 1))
    assert torch.equal(curve.correct[-1], (predict(model, data.x).argmax(1) == data.y).float())
    probs = predict(model, data.x).softmax(1)
    assert torch.equal(curve.true_confidence[-1], probs.gather(1, data.y.view(-1, 1)).squeeze(1))
    assert bool((curve.entropy >= 0).all()) and bool((curve.entropy <= math.log(data.num_classes) + 1e-5).all())


def test_one_training_serves_every_learning_curve_proxy():
    data, _, ctx = noisy_digits()
    first = learning_curve(data, ctx)
    assert learning_curve(data, ctx) is first
    assert learning_curve(data, attrs.evolve(ctx, seed=1)) is not first


def released_learning_events(logits: list[torch.Tensor], labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Per sample, the running means the released code keeps (``learning_events.py``, kairanzhao/RUM):
    of the true-class softmax confidence, of the max softmax, of the negative entropy Σ p log p and of the
    correctness, over the recorded epochs (a loop over samples and epochs)."""
    n = len(labels)
    out = {k: np.zeros(n) for k in ("confidence", "max_conf", "neg_entropy", "bi_acc")}
    for i in range(n):
        conf, pmax, pe, acc = [], [], [], []
        for epoch_logits in logits:
            p = torch.softmax(epoch_logits[i], 0).tolist()
            conf.append(p[int(labels[i])])
            pmax.append(max(p))
            pe.append(sum(v * np.log(v) for v in p if v > 0))
            acc.append(1.0 if int(np.argmax(epoch_logits[i].tolist())) == int(labels[i]) else 0.0)
        out["confidence"][i], out["max_conf"][i] = np.mean(conf), np.mean(pmax)
        out["neg_entropy"][i], out["bi_acc"][i] = np.mean(pe), np.mean(acc)
    return out


@pytest.mark.reference("metric", "confidence", source="kairanzhao/RUM:memorization_proxy/learning_events.py")
@pytest.mark.reference("metric", "max-confidence", source="kairanzhao/RUM:memorization_proxy/learning_events.py")
@pytest.mark.reference("metric", "entropy", source="kairanzhao/RUM:memorization_proxy/learning_events.py")
@pytest.mark.reference("metric", "correctness", source="kairanzhao/RUM:memorization_proxy/learning_events.py")
def test_learning_speed_proxies_are_the_released_running_means_inverted(tiny_run):
    """Each one-run proxy equals the released code's per-sample running mean over training, inverted so that
    higher = more memorized (REFERENCES.md): 1 − mean p_y, 1 − mean max p, −mean Σ p log p, 1 − mean
    correctness. (The released code reads the training batches' outputs in train mode; dememo an
    end-of-epoch evaluation pass, a documented choice: the reference here is fed the same per-epoch
    outputs.) The flipped labels must come out on top of the C-proxy."""
    from dememo import plugins

    data, ctx, logits = tiny_run
    ref = released_learning_events(logits, data.y)
    registry = plugins.get_registry()
    ours = {name: registry.get("metric", name)().score(data, ctx).double().cpu().numpy()
            for name in ("confidence", "max-confidence", "entropy", "correctness")}
    np.testing.assert_allclose(ours["confidence"], 1 - ref["confidence"], atol=1e-5)
    np.testing.assert_allclose(ours["max-confidence"], 1 - ref["max_conf"], atol=1e-5)
    np.testing.assert_allclose(ours["entropy"], -ref["neg_entropy"], atol=1e-5)
    np.testing.assert_allclose(ours["correctness"], 1 - ref["bi_acc"], atol=1e-6)
    flipped = np.zeros(len(data), dtype=bool)
    flipped[::10] = True
    assert ours["confidence"][flipped].mean() > ours["confidence"][~flipped].mean() + 0.2
