"""The ``run-time`` metric (plugins/dememo_plugins/metrics/run_time.py): behaviour tests and reference checks.

Reference checks of the reference rows: the clean release, standard training, the original model, exact
retraining, and the run-time ratio. Each is a definition rather than an algorithm, so each check pins the
definition's observable consequence (what the row may and may not depend on), which a wrong row would break.
"""

from __future__ import annotations

import pytest
import torch

from dememo.evaluation import Evaluation
from dememo.testing import tiny_context, tiny_splits
from dememo_plugins.metrics.run_time import RunTime


@pytest.mark.reference("metric", "run-time", source="paper: Fan et al. ICLR 2024 (SalUn), Table 1 'RTE' = run time "
                       "of the unlearning method relative to Retrain")
@pytest.mark.parametrize(("unlearn", "retrain"), [(2.5, 10.0), (10.0, 10.0), (0.0, 4.0), (7.0, 0.5)])
def test_run_time_is_the_ratio_of_unlearning_to_retraining_time(unlearn, retrain):
    splits = tiny_splits()
    ev = Evaluation(model=torch.nn.Identity(), splits=splits, track="unlearning",
                    costs={"unlearn_seconds": unlearn, "retrain_seconds": retrain})
    out = RunTime().compute(ev, tiny_context(splits))
    assert out["rte"] == pytest.approx(unlearn / retrain) and out["unlearn_seconds"] == unlearn
    missing = RunTime().compute(Evaluation(model=torch.nn.Identity(), splits=splits, track="unlearning",
                                           costs={"unlearn_seconds": unlearn}), tiny_context(splits))
    assert missing["rte"] != missing["rte"]  # NaN, never a made-up ratio
