"""The ``unlearning-accuracy`` metric (plugins/dememo_plugins/metrics/unlearning_accuracy.py): behaviour tests and reference checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from dememo.data import Splits, Task
from dememo.evaluation import Evaluation
from dememo_plugins.metrics.unlearning_accuracy import UnlearningAccuracy

from support.metrics.unlearning import Table, data, loop_accuracy, onehot_images, pairs


@pytest.mark.reference("metric", "unlearning-accuracy", source="OPTML-Group/Unlearn-Saliency:Classification/main_forget.py")
@settings(max_examples=25, deadline=None)
@given(forget=pairs, retain=pairs, test=pairs)
def test_unlearning_accuracy_is_top1_accuracy_per_split_in_eval_mode(forget, retain, test):
    """SalUn (Fan et al., ICLR 2024; OPTML-Group/Unlearn-Saliency, Classification/main_forget.py): UA, RA and TA
    are the accuracies (``trainer/val.py``'s ``validate``, model in eval mode) on the forget, retain and test
    loaders, UA reported as 100 − forget accuracy. The Table model predicts a chosen class per sample (and
    another one in train mode)."""
    sets = {name: data(onehot_images([p for p, _ in s], 3), [lab for _, lab in s], 3, name)
            for name, s in (("forget", forget), ("retain", retain), ("test", test))}
    splits = Splits(sets["retain"], sets["retain"], sets["test"])
    task = Task(sets["retain"], sets["forget"], sets["retain"])
    model = Table().train()
    ev = Evaluation(model=model, splits=splits, track="unlearning", task=task)
    values = UnlearningAccuracy().compute(ev, None)
    expected = {f"{n}_acc": loop_accuracy(*zip(*s)) for n, s in (("forget", forget), ("retain", retain), ("test", test))}
    assert values == pytest.approx(expected, abs=1e-6)
    assert model.training  # the model's mode is restored
