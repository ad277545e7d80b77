"""The ``none`` attack (plugins/dememo_plugins/attacks/none.py): behaviour tests and reference checks."""

from __future__ import annotations

import pytest

from dememo.context import standard_training
from dememo.testing import tiny_context, tiny_splits
from dememo_plugins.attacks.none import NoAttack

from support.reference_rows import _same_weights


@pytest.mark.reference("attack", "none", source="paper: Huang et al. ICLR 2021, standard training (no defence)")
def test_none_attack_is_standard_training_and_the_identity_on_models():
    splits = tiny_splits()
    trained = NoAttack().train(splits, tiny_context(splits, seed=3))
    expected = standard_training(tiny_context(splits, seed=3), splits.train)[0]
    assert _same_weights(trained, expected)
    assert NoAttack().attack(trained, splits, tiny_context(splits)) is trained
