"""The ``original`` unlearner (plugins/dememo_plugins/unlearners/original.py): behaviour tests and reference checks.

Reference checks of the reference rows: the clean release, standard training, the original model, exact
retraining, and the run-time ratio. Each is a definition rather than an algorithm, so each check pins the
definition's observable consequence (what the row may and may not depend on), which a wrong row would break.
"""

from __future__ import annotations

import pytest

from dememo.context import standard_training
from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo_plugins.unlearners.original import Original


@pytest.mark.reference("unlearner", "original", source="paper: Fan et al. ICLR 2024 (SalUn), Table 1 row 'original'")
def test_original_returns_the_trained_model_itself():
    splits = tiny_splits()
    model = standard_training(tiny_context(splits), splits.train)[0]
    assert Original().unlearn(model, tiny_task(splits), tiny_context(splits)) is model
