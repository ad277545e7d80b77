"""The ``digits`` dataset (plugins/dememo_plugins/datasets/digits.py): behaviour tests and reference checks."""

from __future__ import annotations

import pytest
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


@pytest.mark.reference("dataset", "digits", source="scikit-learn/scikit-learn:sklearn/datasets/_base.py")
def test_the_digits_read_without_scikit_learn_are_its_load_digits_exactly():
    """``digits_arrays`` reads scikit-learn's shipped CSV itself (no sklearn import at every start): the same
    values, shapes and dtypes as ``load_digits`` — so the dataset fingerprint, and every cache key, holds."""
    import numpy as np
    from sklearn.datasets import load_digits

    from dememo_plugins.datasets.digits import digits_arrays

    images, target = digits_arrays()
    raw = load_digits()
    assert images.dtype == raw.images.dtype and target.dtype == raw.target.dtype
    assert np.array_equal(images, raw.images) and np.array_equal(target, raw.target)
