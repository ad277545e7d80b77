"""Hyper-parameters at the edges: ``--set`` strings and suite values become typed plugin instances, or a
one-line, path-addressed error."""

from __future__ import annotations

import json
import typing
from typing import ClassVar, Literal

import attrs
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import dememo
from dememo import plugins
from dememo.errors import ParameterError, UserError
from dememo.params import build, parse_sets, parse_value, structure


@attrs.define
class Toy(dememo.Unlearner):
    """A test unlearner with one field of each supported type."""

    name: ClassVar[str] = "toy"
    lr: float = 0.01
    epochs: int = 5
    mode: Literal["sample", "class"] = "sample"
    verbose: bool = False
    tag: str = "x"


@attrs.define
class NoParams(dememo.Metric):
    """A metric without hyper-parameters."""

    name: ClassVar[str] = "no-params"


def one_line_error(cls, params, path="$.toy") -> str:
    with pytest.raises(ParameterError) as exc:
        build(cls, params, path)
    msg = str(exc.value)
    assert msg and "\n" not in msg
    assert isinstance(exc.value, UserError) and exc.value.exit_code == 2
    return msg


# -- parse_sets ------------------------------------------------------------------------------------


def test_parse_sets_groups_by_plugin_and_parses_json_values():
    got = parse_sets([
        "em.pgd_steps=5", "recipe.epochs=3", "finetune.lr=1e-3", "em.mode=class", "x.flag=true",
        'x.quoted="a b"', "x.grid=[1, 2.5]", "x.nothing=null", "x.map={\"a\": 1}",
    ])
    assert got == {
        "em": {"pgd_steps": 5, "mode": "class"},
        "recipe": {"epochs": 3},
        "finetune": {"lr": 0.001},
        "x": {"flag": True, "quoted": "a b", "grid": [1, 2.5], "nothing": None, "map": {"a": 1}},
    }


def test_parse_sets_keeps_plain_strings_and_splits_on_the_last_dot_and_first_equals():
    assert parse_sets(["em.mode=sample"]) == {"em": {"mode": "sample"}}
    assert parse_sets(["a.b.c=1"]) == {"a.b": {"c": 1}}
    assert parse_sets(["em.expr=a=b"]) == {"em": {"expr": "a=b"}}
    assert parse_sets([" em.steps = 5 "]) == {"em": {"steps": 5}}
    assert parse_sets(["em.steps=1", "em.steps=2"]) == {"em": {"steps": 2}}  # later wins
    assert parse_sets([]) == {}


@pytest.mark.parametrize("item", ["em.steps", "steps=5", ".steps=5", "em.=5", "=5", "", "em steps=5"])
def test_parse_sets_rejects_items_without_plugin_dot_param_equals(item):
    with pytest.raises(ParameterError) as exc:
        parse_sets([item])
    msg = str(exc.value)
    assert "PLUGIN.PARAM=VALUE" in msg and repr(item) in msg and "\n" not in msg


@pytest.mark.parametrize(("text", "value"), [("5", 5), ("0.5", 0.5), ("-1e-3", -0.001), ("true", True),
                                             ("false", False), ("null", None), ("[1]", [1]), ("class", "class"),
                                             ("", ""), ("1.2.3", "1.2.3")])
def test_parse_value_is_json_when_it_parses_else_the_raw_string(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


# -- build: names ----------------------------------------------------------------------------------


def test_build_unknown_parameter_suggests_the_closest_name():
    msg = one_line_error(Toy, {"epoch": 3})
    assert "unknown parameter 'epoch' @ $.toy" in msg
    assert "did you mean 'epochs'?" in msg
    assert "parameters: lr, epochs, mode, verbose, tag" in msg


def test_build_unknown_parameter_without_close_match_lists_the_parameters():
    msg = one_line_error(Toy, {"zzzzzz": 1})
    assert "did you mean" not in msg and "parameters: lr, epochs" in msg
    assert "parameters: none" in one_line_error(NoParams, {"x": 1}, "$.no-params")


def test_build_fills_defaults_and_does_not_mutate_its_input():
    params = {"lr": 0.5}
    assert build(Toy, params, "$.toy") == Toy(lr=0.5)
    assert params == {"lr": 0.5}
    assert build(NoParams, {}, "$") == NoParams()


# -- build: types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "where", "expected"), [
    ({"lr": "fast"}, "$.toy.lr", "float"),
    ({"lr": [0.1]}, "$.toy.lr", "float"),
    ({"lr": True}, "$.toy.lr", "float"),
    ({"epochs": 1.5}, "$.toy.epochs", "int"),
    ({"epochs": "many"}, "$.toy.epochs", "int"),
    ({"epochs": True}, "$.toy.epochs", "int"),
    ({"tag": 3}, "$.toy.tag", "str"),
    ({"verbose": "maybe"}, "$.toy.verbose", "bool"),
    ({"verbose": 2}, "$.toy.verbose", "bool"),
])
def test_build_wrong_type_is_a_path_addressed_one_line_message(params, where, expected):
    msg = one_line_error(Toy, params)
    assert f"@ {where}" in msg and expected in msg


def test_build_literal_outside_its_choices_names_path_and_choices():
    msg = one_line_error(Toy, {"mode": "bogus"})
    assert "@ $.toy.mode" in msg and "'sample'" in msg and "'class'" in msg and "bogus" in msg


def test_build_reports_every_bad_field_on_one_line():
    msg = one_line_error(Toy, {"lr": "x", "epochs": "y"})
    assert "@ $.toy.lr" in msg and "@ $.toy.epochs" in msg


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("false", False), ("yes", True), ("no", False), ("on", True), ("off", False),
    ("1", True), ("0", False), ("TRUE", True), ("Yes", True), (True, True), (False, False), (1, True), (0, False),
])
def test_build_parses_booleans_from_words(value, expected):
    assert build(Toy, {"verbose": value}, "$.toy").verbose is expected


@pytest.mark.parametrize(("value", "expected"), [(2.0, 2), ("3", 3), (4, 4)])
def test_build_accepts_integral_ints(value, expected):
    got = build(Toy, {"epochs": value}, "$.toy").epochs
    assert got == expected and type(got) is int


@pytest.mark.parametrize(("value", "expected"), [(1, 1.0), ("0.25", 0.25), (1e-4, 1e-4)])
def test_build_accepts_numbers_for_floats(value, expected):
    got = build(Toy, {"lr": value}, "$.toy").lr
    assert got == expected and type(got) is float


def test_structure_names_the_path_for_non_attrs_targets():
    with pytest.raises(ParameterError, match=r"@ \$\.x"):
        structure("abc", int, "$.x")
    assert structure("7", int, "$.x") == 7


# -- round trips of first-party plugins ------------------------------------------------------------

FIRST_PARTY = [info.cls for info in plugins.get_registry().all()]


def _strategy(tp):
    if typing.get_origin(tp) is Literal:
        return st.sampled_from(typing.get_args(tp))
    return {
        bool: st.booleans(),
        int: st.integers(1, 100) | st.integers(-(10**9), 10**9),
        float: st.floats(0, 1) | st.floats(allow_nan=False, allow_infinity=False),
        # free-text parameters name things (plugin labels such as ``neggrad-plus(alpha=0.97)``); text that
        # reads as JSON (``1``, ``true``) is parsed as a value on the command line by design, and values are
        # stripped of surrounding whitespace
        str: st.text(max_size=10).filter(lambda t: _not_json(t) and t == t.strip()),
    }.get(tp)


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def field_values(cls):
    """Per field: the default or a random value of its type. Keeping defaults in the mix lets plugins
    with many validated fields (REM has eight constraints) pass validation often enough for hypothesis;
    purely random draws were rejected 459 times out of 459 under some seeds."""
    attrs.resolve_types(cls)
    fields = {}
    for f in attrs.fields(cls):
        strategy = _strategy(f.type)
        if strategy is None:
            continue
        if f.default is not attrs.NOTHING and not isinstance(f.default, attrs.Factory):
            strategy = st.just(f.default) | strategy
        fields[f.name] = strategy
    return st.fixed_dictionaries(fields)


def construct(cls, kw):
    """``cls(**kw)``, or None where the plugin's own validation rejects the values (e.g. alpha > 1)."""
    try:
        return cls(**kw)
    except ValueError:
        return None


def test_first_party_plugins_are_found():
    families = {cls.family for cls in FIRST_PARTY}
    assert {"poisoner", "unlearner", "attack", "metric"} <= families


@pytest.mark.parametrize("cls", FIRST_PARTY, ids=lambda c: f"{c.family}:{c.name}")
def test_default_params_round_trip_through_build(cls):
    assert build(cls, cls().params(), "$") == cls()
    assert build(cls, json.loads(json.dumps(cls().params())), "$") == cls()


@pytest.mark.parametrize("cls", FIRST_PARTY, ids=lambda c: f"{c.family}:{c.name}")
# plugins validate their own parameters (AR: window ≥ 2, crop ≥ window − 1), so many random draws are
# rightly rejected; that is not a problem of the strategy
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_params_round_trip_through_build_and_set_strings(cls, data):
    obj = construct(cls, data.draw(field_values(cls)))
    assume(obj is not None)
    assert build(cls, obj.params(), f"$.{cls.name}") == obj
    # as a user types them on the command line: JSON for numbers, raw words for choices
    items = [f"{cls.name}.{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in obj.params().items()]
    sets = parse_sets(items)
    assert build(cls, sets.get(cls.name, {}), f"$.{cls.name}") == obj
