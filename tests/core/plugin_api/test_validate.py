"""dememo.validate: each rule passes the values inside its range and rejects the others with a ValueError
that names the parameter and the value; the ends of a range are open or closed as asked (issue 19)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dememo import validate

numbers = st.floats(allow_nan=False, allow_infinity=True, width=64) | st.integers(-10**6, 10**6)
finite = st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-10**6, 10**6)
names = st.from_regex(r"[a-z][a-z_0-9]{0,11}", fullmatch=True)


def rejects(check, name, value, *fragments):
    """``check()`` raises ValueError naming ``name`` first and ``value`` last, with each fragment between."""
    with pytest.raises(ValueError) as info:
        check()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{name} ") and message.endswith(f", got {value!r}" if isinstance(value, str)
                                                                   else f", got {value}")
    for fragment in fragments:
        assert fragment in message
    return message


@given(a=finite, b=finite, value=numbers, low_open=st.booleans(), high_open=st.booleans(), name=names)
def test_in_range_follows_its_ends(a, b, value, low_open, high_open, name):
    low, high = min(a, b), max(a, b)
    inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    check = lambda: validate.in_range(low, high, low_open=low_open, high_open=high_open, **{name: value})  # noqa: E731
    if inside:
        check()
    else:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        rejects(check, name, value, f"must be in {interval}")


@given(a=finite, b=finite, low_open=st.booleans(), high_open=st.booleans())
def test_in_range_boundaries(a, b, low_open, high_open):
    assume(a != b)
    low, high = min(a, b), max(a, b)
    for end, is_open in ((low, low_open), (high, high_open)):
        if is_open:
            with pytest.raises(ValueError, match=r"^x must be in "):
                validate.in_range(low, high, low_open=low_open, high_open=high_open, x=end)
        else:
            validate.in_range(low, high, low_open=low_open, high_open=high_open, x=end)


def test_in_range_message_and_description():
    with pytest.raises(ValueError, match=re.escape("x must be in (0, 1], got 2.0")):
        validate.in_range(0, 1, low_open=True, x=2.0)
    message = "eps (the PGD L∞ radius in [0, 1] pixel space) must be in [0, 1], got 2"
    with pytest.raises(ValueError, match=re.escape(message)):
        validate.in_range(0, 1, about="the PGD L∞ radius in [0, 1] pixel space", eps=2)
    with pytest.raises(ValueError, match=re.escape("l2 must be > 0 and finite, got inf")):
        validate.in_range(0, math.inf, low_open=True, high_open=True, l2=math.inf)
    with pytest.raises(ValueError, match=re.escape("t must be ≤ 1, got 2")):
        validate.in_range(-math.inf, 1, t=2)
    validate.in_range(0, math.inf, big=math.inf)  # a closed infinite end admits infinity


@given(value=numbers, name=names, about=st.none() | st.just("what it is"))
def test_one_sided_rules(value, name, about):
    for rule, ok, text in ((validate.positive, value > 0, "must be > 0"),
                           (validate.non_negative, value >= 0, "must be ≥ 0"),
                           (validate.finite, math.isfinite(value), "must be finite")):
        check = lambda: rule(about=about, **{name: value})  # noqa: E731, B023
        if ok:
            check()
        else:
            message = rejects(check, name, value, text)
            assert (f"{name} (what it is) must" in message) == (about is not None)


@given(minimum=finite, value=numbers, name=names)
def test_at_least(minimum, value, name):
    check = lambda: validate.at_least(minimum, **{name: value})  # noqa: E731
    if value >= minimum:
        check()
    else:
        rejects(check, name, value, f"must be ≥ {minimum}")
    validate.at_least(minimum, x=minimum)  # the bound itself passes


@pytest.mark.parametrize("rule", [validate.positive, validate.non_negative, validate.finite,
                                  lambda **v: validate.at_least(0, **v), lambda **v: validate.in_range(-1, 1, **v)])
def test_nan_passes_no_rule(rule):
    with pytest.raises(ValueError, match=r"^x must be .*, got nan$"):
        rule(x=math.nan)


@given(value=st.none() | finite)
def test_optional_values(value):
    if value is None or value > 0:
        validate.positive(none="the recipe's lr", lr=value)
    else:
        rejects(lambda: validate.positive(none="the recipe's lr", lr=value), "lr", value,
                "must be > 0 or None (the recipe's lr)")
    with pytest.raises(ValueError, match=r"^lr must be > 0 or None, got"):
        validate.positive(none=True, lr=-1)
    with pytest.raises(ValueError, match=r"^lr must be > 0, got None$"):  # None fails unless allowed
        validate.positive(lr=None)


@given(choices=st.lists(names, min_size=1, max_size=4, unique=True), value=names)
def test_one_of(choices, value):
    check = lambda: validate.one_of(choices, about="the optimiser", optimizer=value)  # noqa: E731
    if value in choices:
        check()
    else:
        rejects(check, "optimizer", value, "optimizer (the optimiser) must be one of " + ", ".join(map(repr, choices)))


def test_every_value_is_checked_and_the_first_bad_one_named():
    validate.at_least(1, epochs=3, probes=1, passes=2)
    with pytest.raises(ValueError, match=r"^probes must be ≥ 1, got 0$"):
        validate.at_least(1, epochs=3, probes=0, passes=0)


def test_fit_schedule():
    validate.fit_schedule(0.1, 1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        validate.fit_schedule(0.0, 1)
    with pytest.raises(ValueError, match="epochs must be ≥ 1"):
        validate.fit_schedule(0.1, 0)
