"""The ``confidence`` scorer (plugins/dememo_plugins/scorers/confidence.py): behaviour tests and reference checks.

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
"""

from __future__ import annotations

import torch

from dememo_plugins.scorers.confidence import ConfidenceProxy

from support.scorers.proxies import noisy_digits


def test_confidence_is_the_first_versions_running_mean():
    """The refactored C-proxy is bit-identical to its first version (which accumulated its own sum)."""
    data, _, ctx = noisy_digits()
    local = ctx.for_training_on(data)
    model = local.new_model()
    total, epochs = torch.zeros(len(data)), []

    def record(m, epoch):
        total.add_(ctx.predict(m, data.x).softmax(1).gather(1, data.y.view(-1, 1)).squeeze(1))
        epochs.append(epoch)

    local.fit(model, data, after_epoch=record)
    assert torch.equal(ConfidenceProxy().score(data, ctx), 1.0 - total / len(epochs))
