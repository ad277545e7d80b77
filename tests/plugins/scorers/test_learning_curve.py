"""The shared learning curve (scorers/_learning_curve.py) behind confidence, max-confidence, entropy and correctness, with their reference check.

One-run memorization proxies rank memorized training samples high (higher = more memorized).

Ground truth is label noise: 5 % of the digits training split (54 of 1,078 images, seeded) get a wrong
label. Under a recipe that fits them — the quick suite's digits recipe without weight decay and with 60
epochs (91 % / 89 % of the flipped labels fitted at the end, seeds 0 / 1) — they are memorized by construction (a
model that never saw a flipped sample cannot predict its wrong label; one trained on it does), and every
proxy must rank them above the clean samples. Measured AUC of "is mislabeled" (seed 0 / 1 of this file's
flips; loss-curvature as tested, ``draws=2, every=3``, and with its defaults in brackets):

=================== ===================== ===================== ============================= ==============
proxy               digits, memorizing    digits, quick recipe  noisy-shapes, quick recipe    noisy-shapes,
                                                                                              memorizing
=================== ===================== ===================== ============================= ==============
confidence          0.9995 / 0.9997       0.9996 / 0.9999       0.996 / 0.986                 0.999
max-confidence      0.978 / 0.974         0.854 / 0.741         0.608 / 0.544                 0.977
entropy             0.957 / 0.945         0.846 / 0.746         0.605 / 0.548                 0.966
correctness         0.9997 / 0.9998       0.9997 / 0.9997       0.991 / 0.970                 0.999
holdout-retraining  0.983 / 0.978         0.924 / 0.861         0.527 / 0.496                 0.836
loss-curvature      0.993 / 0.997         0.991 / 0.991         0.950 / 0.905                 0.995
                    [0.998 / 0.999]       [0.997 / 0.997]       [0.961 / 0.914]
=================== ===================== ===================== ============================= ==============

The quick recipes fit few flipped labels (digits 26 % / 9 %, noisy-shapes 1 % / 3 %): the label-free proxies
(max-confidence, entropy) and holdout-retraining, which need the model to have *memorized* the wrong label,
fall back there, and the label-aware ones still see the samples as never learned. The asserted floors are
the seed-0 digits values minus a margin (noisy-shapes is too slow for this file: 5–40 s per proxy call).
The whole file takes about 15 s on 2 cores (30 s when they are shared).

Reference checks for the memorization forget sets (``dememo.forget``) and RUM (``rum``), issue 17.

The selection and RUM's sequential retain sets are transcribed here, independently, from the RUM authors'
released code (kairanzhao/RUM, ``main_forget.py``: the ``mem_fs_split`` branch, ``select_fs`` and the
``--sequential`` retain sets), as small list-and-sort loops, and compared with dememo's on small arrays.
"""

from __future__ import annotations

import torch
import math
import attrs
import numpy as np
import pytest
from dememo.context import standard_training
from dememo_plugins.scorers._learning_curve import learning_curve
from dememo.training import predict
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
