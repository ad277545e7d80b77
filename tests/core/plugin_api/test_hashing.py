"""Cache keys: canonical JSON digests that mean the same thing for the same configuration, and nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.hashing import canonical, canonical_json, derive_seed, digest, tensor_digest

# JSON-able values as a configuration holds them: scalars, lists and string-keyed dicts.
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=6), values, min_size=2, max_size=6), st.randoms())
def test_digest_is_invariant_to_dict_key_order(d, rnd):
    items = list(d.items())
    rnd.shuffle(items)
    assert digest(dict(items)) == digest(d)


@given(st.lists(values, max_size=5))
def test_tuples_hash_as_lists(items):
    assert digest(tuple(items)) == digest(items)
    assert digest({"k": tuple(items)}) == digest({"k": items})


@given(values, values)
def test_digest_distinguishes_different_values(a, b):
    if a != b:
        assert digest(a) != digest(b)


@given(values)
def test_digest_is_deterministic_and_ignores_copies(value):
    assert digest(value) == digest(json.loads(json.dumps(value)))


@given(values)
def test_canonical_json_round_trips_through_json(value):
    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text


def test_int_float_and_bool_are_distinct_keys():
    # canonical keeps JSON's distinction: 1, 1.0 and true are three different configurations
    assert len({digest(1), digest(1.0), digest(True)}) == 3
    assert digest(0) != digest(False)
    assert canonical(1.0) == 1.0 and isinstance(canonical(1.0), float)


def test_numpy_scalars_hash_like_python_scalars():
    assert digest(np.int64(3)) == digest(3)
    assert digest(np.float32(0.5)) == digest(0.5)
    assert digest({"lr": np.float64(0.1)}) == digest({"lr": 0.1})


def test_non_finite_floats_are_hashable_and_distinct():
    keys = {digest(float("nan")), digest(float("inf")), digest(float("-inf")), digest(0.0)}
    assert len(keys) == 4
    json.loads(canonical_json([float("nan")]))  # still valid JSON (no bare NaN literal)


def test_dict_keys_are_compared_as_strings():
    # documented: keys are stringified, as in JSON
    assert digest({1: "a"}) == digest({"1": "a"})


@pytest.mark.parametrize("bad", [{1, 2}, object(), b"bytes", torch.zeros(2), np.zeros(2), 1 + 2j, [1, {"x": {3}}]])
def test_digest_rejects_non_json_values_with_type_error(bad):
    with pytest.raises(TypeError, match="cannot hash value of type"):
        digest(bad)


def test_digest_is_sha256_hex():
    d = digest({"a": 1})
    assert len(d) == 64 and all(c in "0123456789abcdef" for c in d)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=24),
    st.data(),
)
def test_tensor_digest_changes_when_one_element_changes(elems, data):
    t = torch.tensor(elems, dtype=torch.float32)
    i = data.draw(st.integers(0, len(elems) - 1))
    u = t.clone()
    u[i] = u[i] + 1.0 if abs(float(u[i])) < 1e3 else 0.0
    assert not torch.equal(t, u)
    assert tensor_digest(t) != tensor_digest(u)
    assert tensor_digest(t) == tensor_digest(t.clone())


def test_tensor_digest_depends_on_dtype_and_shape():
    t = torch.arange(12, dtype=torch.int32)
    assert tensor_digest(t) != tensor_digest(t.reshape(3, 4))
    assert tensor_digest(t.reshape(3, 4)) != tensor_digest(t.reshape(4, 3))
    assert tensor_digest(t) != tensor_digest(t.view(torch.float32))  # same bytes, other dtype
    assert tensor_digest(torch.zeros(0)) != tensor_digest(torch.zeros(0, dtype=torch.int64))


def test_tensor_digest_separates_tensor_boundaries():
    a, b = torch.arange(4.0), torch.arange(4.0, 6.0)
    assert tensor_digest(a, b) != tensor_digest(torch.cat([a, b]))
    assert tensor_digest(a, b) != tensor_digest(b, a)


def test_tensor_digest_ignores_layout_and_grad():
    t = torch.arange(12.0).reshape(3, 4)
    assert tensor_digest(t.t()) == tensor_digest(t.t().contiguous())
    assert tensor_digest(t.clone().requires_grad_(True)) == tensor_digest(t)
def test_tensor_digest_accepts_zero_dim_tensors():
    assert tensor_digest(torch.tensor(1.0)) != tensor_digest(torch.tensor(2.0))


@given(st.lists(values, max_size=4))
def test_derive_seed_is_deterministic_and_below_2_pow_63(parts):
    s = derive_seed(*parts)
    assert s == derive_seed(*parts)
    assert 0 <= s < 2**63
    torch.Generator().manual_seed(s)  # usable as a torch seed as is


def test_derive_seed_separates_purposes():
    seeds = {derive_seed(0, "key", p) for p in ("global", "forget", "init", "")}
    assert len(seeds) == 4
    assert derive_seed(0, "a") != derive_seed(1, "a")
    assert derive_seed("a", "b") != derive_seed("ab") and derive_seed(["a", "b"]) != derive_seed("a", "b")
