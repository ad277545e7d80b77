"""The ``none`` poisoner (plugins/dememo_plugins/poisoners/none.py): behaviour tests and reference checks."""

from __future__ import annotations

import pytest
import torch

from dememo.testing import tiny_context, tiny_splits
from dememo_plugins.poisoners.none import NoPoison


@pytest.mark.reference("poisoner", "none", source="paper: Huang et al. ICLR 2021, the 'clean' row of Table 1")
def test_none_poisoner_releases_the_images_unchanged_as_a_copy():
    splits = tiny_splits()
    out = NoPoison().poison(splits.train, tiny_context(splits))
    assert torch.equal(out, splits.train.x) and out.data_ptr() != splits.train.x.data_ptr()
