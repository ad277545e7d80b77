"""Data keeps sample identity (``index``) and a content lineage (``fingerprint``) through subsets and poisons."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.data import Data, Splits, Task


def make(n: int = 10, shape=(1, 2, 2), seed: int = 0, tag: str = "t") -> Data:
    g = torch.Generator().manual_seed(seed)
    return Data.from_tensors(torch.rand(n, *shape, generator=g), torch.arange(n) % 3, 3, tag=tag)


def test_from_tensors_converts_dtypes_and_indexes_positions():
    d = Data.from_tensors(torch.rand(4, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 1], dtype=torch.int32), 3)
    assert d.x.dtype == torch.float32 and d.y.dtype == torch.int64
    assert d.index.tolist() == [0, 1, 2, 3]
    assert len(d) == 4 and d.shape == (1, 2, 2) and d.device == torch.device("cpu")


def test_from_tensors_fingerprint_depends_on_content_and_tag():
    a = make(seed=0)
    assert make(seed=0).fingerprint == a.fingerprint
    assert make(seed=1).fingerprint != a.fingerprint
    assert make(tag="other").fingerprint != a.fingerprint
    x = a.x.clone()
    x[3, 0, 1, 1] += 1e-3
    assert Data.from_tensors(x, a.y, 3, tag="t").fingerprint != a.fingerprint
    y = a.y.clone()
    y[0] = (y[0] + 1) % 3
    assert Data.from_tensors(a.x, y, 3, tag="t").fingerprint != a.fingerprint


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=12))
def test_subset_keeps_index_and_derives_a_stable_new_fingerprint(positions):
    d = make()
    s = d.subset(torch.tensor(positions, dtype=torch.int64))
    assert s.index.tolist() == positions
    assert torch.equal(s.x, d.x[positions]) and torch.equal(s.y, d.y[positions])
    assert s.fingerprint != d.fingerprint
    assert d.subset(list(positions)).fingerprint == s.fingerprint  # same positions, same fingerprint
    assert s.num_classes == d.num_classes


def test_subset_fingerprint_depends_on_positions_order_and_tag():
    d = make()
    fp = d.subset([1, 2]).fingerprint
    assert d.subset([2, 1]).fingerprint != fp
    assert d.subset([1, 3]).fingerprint != fp
    assert d.subset([1, 2], tag="forget").fingerprint != fp
    assert make(seed=1).subset([1, 2]).fingerprint != fp  # other parent


def test_nested_subsets_keep_dataset_indices():
    d = make(10)
    retain = d.subset([9, 7, 5, 3, 1], "retain")
    inner = retain.subset([4, 0])
    assert inner.index.tolist() == [1, 9]
    assert torch.equal(inner.x, d.x[[1, 9]])


def test_with_images_keeps_labels_and_index_under_a_new_fingerprint():
    d = make().subset([4, 2, 0])
    x = (d.x + 0.01).clamp(0, 1)
    p = d.with_images(x, "poisoned-fp")
    assert p.fingerprint == "poisoned-fp" and p.x is x
    assert torch.equal(p.y, d.y) and torch.equal(p.index, d.index)
    assert d.fingerprint != "poisoned-fp" and not torch.equal(d.x, x)  # the original is untouched


def test_with_images_rejects_a_shape_change():
    d = make(4)
    with pytest.raises(ValueError, match="differs"):
        d.with_images(torch.zeros(4, 1, 3, 3), "fp")
    with pytest.raises(ValueError, match="differs"):
        d.with_images(torch.zeros(3, 1, 2, 2), "fp")


@pytest.mark.parametrize("shape", [(4,), (4, 4), (4, 2, 2), (1, 4, 1, 2, 2)])
def test_constructor_rejects_images_that_are_not_4d(shape):
    with pytest.raises(ValueError, match="N×C×H×W"):
        Data(x=torch.zeros(shape), y=torch.zeros(shape[0], dtype=torch.int64), num_classes=2, fingerprint="f")


def test_constructor_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        Data(x=torch.zeros(3, 1, 2, 2), y=torch.zeros(2, dtype=torch.int64), num_classes=2, fingerprint="f")
    with pytest.raises(ValueError, match="same length"):
        Data(x=torch.zeros(3, 1, 2, 2), y=torch.zeros(3, dtype=torch.int64), num_classes=2, fingerprint="f",
             index=torch.arange(2))


def test_empty_subset_is_valid_data():
    e = make().subset(torch.tensor([], dtype=torch.int64))
    assert len(e) == 0 and e.shape == (1, 2, 2)


def test_to_same_device_is_identity_and_splits_move_together():
    d = make()
    assert d.to("cpu") is d
    s = Splits(make(6), make(4, seed=1), make(5, seed=2))
    assert s.num_classes == 3 and s.shape == (1, 2, 2)
    moved = s.to("cpu")
    assert moved.train.fingerprint == s.train.fingerprint and len(moved.test) == 5


def test_task_carries_retain_forget_and_val():
    d = make(10)
    t = Task(retain=d.subset(list(range(2, 10)), "retain"), forget=d.subset([0, 1], "forget"), val=make(4, seed=3))
    assert sorted(t.retain.index.tolist() + t.forget.index.tolist()) == list(range(10))
    assert t.retain.fingerprint != t.forget.fingerprint
