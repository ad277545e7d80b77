"""The ``digits`` dataset (plugins/dememo_plugins/datasets/digits.py): behaviour tests and reference checks."""

from __future__ import annotations

import torch

from dememo_plugins.datasets.digits import Digits


def test_digits_is_the_real_scikit_learn_data_with_a_fixed_split():
    a, b = Digits().load(None, False), Digits().load(None, False)
    assert (len(a.train), len(a.val), len(a.test)) == (1078, 180, 539)
    assert a.train.shape == (1, 8, 8) and a.num_classes == 10
    assert a.train.fingerprint == b.train.fingerprint
    assert float(a.train.x.min()) == 0.0 and float(a.train.x.max()) == 1.0
    assert torch.allclose(a.train.x * 16, (a.train.x * 16).round())  # 17 grey levels, step 1/16
    test_idx = set(a.test.index.tolist())
    assert len(test_idx) == len(a.test)
