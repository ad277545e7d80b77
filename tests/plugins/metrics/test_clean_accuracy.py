"""The ``clean-accuracy`` metric (plugins/dememo_plugins/metrics/clean_accuracy.py): behaviour tests and reference checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from dememo.data import Splits
from dememo.evaluation import Evaluation
from dememo_plugins.metrics.clean_accuracy import CleanAccuracy

from support.metrics.unlearning import Table, data, loop_accuracy, onehot_images, pairs


@pytest.mark.reference("metric", "clean-accuracy",
                       source="paper: Huang et al., Unlearnable Examples: Making Personal Data Unexploitable (ICLR 2021), "
                              "Table 1 (clean test accuracy of a model trained on the released data)")
@settings(max_examples=25, deadline=None)
@given(train=pairs, test=pairs)
def test_clean_accuracy_is_top1_accuracy_on_test_and_released_train(train, test):
    """The unlearnability headline (Huang et al., ICLR 2021, Table 1): top-1 accuracy of the model trained on
    the (poisoned) release, on the clean test set; ``train_acc`` is the same on the released training data."""
    train_data = data(onehot_images([p for p, _ in train], 3), [lab for _, lab in train], 3, "train")
    test_data = data(onehot_images([p for p, _ in test], 3), [lab for _, lab in test], 3, "test")
    ev = Evaluation(model=Table().train(), splits=Splits(train_data, train_data, test_data), track="unlearnability",
                    train_data=train_data)
    values = CleanAccuracy().compute(ev, None)
    assert values["test_acc"] == pytest.approx(loop_accuracy(*zip(*test)), abs=1e-6)
    assert values["train_acc"] == pytest.approx(loop_accuracy(*zip(*train)), abs=1e-6)
