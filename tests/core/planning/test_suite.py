"""Suites: shipped ones load; malformed files are one-line, path-addressed user errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dememo.errors import SuiteError, UserError
from dememo.planning.suite import ForgetSpec, Suite, load_suite, shipped
from dememo.training import Recipe

MINIMAL = """\
name = "mini"
{top}
[[datasets]]
name = "digits"
architecture = "mlp"
{dataset}
{tables}
"""


def write(tmp_path: Path, top: str = "", dataset: str = "", tables: str = "") -> str:
    path = tmp_path / "suite.toml"
    path.write_text(MINIMAL.format(top=top, dataset=dataset, tables=tables))
    return str(path)


def suite_error(source: str) -> str:
    with pytest.raises(SuiteError) as exc:
        load_suite(source)
    msg = str(exc.value)
    assert msg and "\n" not in msg and isinstance(exc.value, UserError) and exc.value.exit_code == 2
    return msg


def test_quick_suite_is_shipped_and_loads():
    assert "quick" in shipped()
    suite = load_suite("quick")
    assert suite.name == "quick" and suite.seeds >= 1
    assert [d.name for d in suite.datasets] and all(isinstance(d.recipe, Recipe) for d in suite.datasets)
    assert set(suite.tracks) <= {"unlearnability", "unlearning", "interplay"}
    assert all(isinstance(f, ForgetSpec) for f in suite.forget)
    assert suite.dataset(suite.datasets[0].name) is suite.datasets[0]


def test_real_suite_is_shipped_and_plans_only_shipped_data():
    """``real`` (issue 21): real MNIST digits shipped in the wheel, on LeNet-5, every unlearner tuned by the
    suite's own search log; its plan needs no file outside the package."""
    from dememo import plugins
    from dememo.planning.planner import Planner

    assert "real" in shipped()
    suite = load_suite("real")
    assert [(d.name, d.architecture) for d in suite.datasets] == [("mnist-10k", "lenet")]
    assert suite.tuned is not None and {e["dataset"] for e in suite.tuned["entries"]} == {"mnist-10k"}
    registry = plugins.get_registry()
    cells = Planner(registry, suite, {}).cells(seeds=1)
    assert {c.track for c in cells} == {"unlearnability", "unlearning", "interplay"}


def test_suite_fingerprint_is_stable_and_json_able():
    a, b = load_suite("quick"), load_suite("quick")
    assert a.fingerprint() == b.fingerprint()
    assert a.to_json()["name"] == "quick"


def test_minimal_suite_file_gets_defaults(tmp_path):
    suite = load_suite(write(tmp_path))
    assert suite.seeds == 3 and suite.forget == [ForgetSpec("random")]
    assert suite.datasets[0].recipe == Recipe() and suite.tracks == ("unlearnability", "unlearning")


def test_suite_fingerprint_changes_with_any_field(tmp_path):
    base = load_suite(write(tmp_path)).fingerprint()
    assert load_suite(write(tmp_path, top="seeds = 2")).fingerprint() != base
    assert load_suite(write(tmp_path, dataset="recipe = { epochs = 3 }")).fingerprint() != base


def test_unknown_suite_name_lists_the_shipped_suites():
    msg = suite_error("quik")
    assert "unknown suite 'quik'" in msg and "quick" in msg and ".toml" in msg


def test_missing_suite_file_is_a_suite_error(tmp_path):
    msg = suite_error(str(tmp_path / "nope.toml"))
    assert "cannot read suite file" in msg


def test_malformed_toml_is_a_suite_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "unterminated\n[[datasets]]\n')
    msg = suite_error(str(path))
    assert "not valid TOML" in msg and "line 1" in msg


@pytest.mark.parametrize(("kwargs", "where", "what"), [
    ({"top": 'seeds = "three"'}, "$.seeds", "int"),
    ({"top": "tracks = [\"unlearnability\", \"forgetting\"]"}, "$.tracks", "forgetting"),
    ({"dataset": 'recipe = { epochs = "many" }'}, "$.datasets[0].recipe.epochs", "int"),
    ({"dataset": "recipe = { lr = [1] }"}, "$.datasets[0].recipe.lr", "float"),
    ({"tables": '[[forget]]\nkind = "sometimes"'}, "$.forget[0].kind", "sometimes"),
    ({"top": "sedes = 3"}, "$", "sedes"),
    ({"dataset": "recipe = { epoch = 3 }"}, "$.datasets[0].recipe", "epoch"),
])
def test_wrong_field_is_a_path_addressed_suite_error(tmp_path, kwargs, where, what):
    msg = suite_error(write(tmp_path, **kwargs))
    assert f"@ {where}" in msg and what in msg and "suite.toml" in msg


def test_suite_without_datasets_or_seeds_is_rejected(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text('name = "e"\ndatasets = []\n')
    assert "lists no datasets" in suite_error(str(path))
    assert "seeds must be ≥ 1" in suite_error(write(tmp_path, top="seeds = 0"))


def test_invalid_forget_fraction_is_a_suite_error(tmp_path):
    msg = suite_error(write(tmp_path, tables="[[forget]]\nkind = \"random\"\nfraction = 1.5"))
    assert "@ $.forget[0]" in msg


def test_invalid_forget_fraction_message_says_what_is_wrong(tmp_path):
    msg = suite_error(write(tmp_path, tables="[[forget]]\nkind = \"random\"\nfraction = 1.5"))
    assert "fraction" in msg and "(0, 1)" in msg


def test_unknown_dataset_in_suite_is_a_suite_error(tmp_path):
    suite = load_suite(write(tmp_path))
    with pytest.raises(SuiteError, match="has no dataset 'cifar'"):
        suite.dataset("cifar")


# -- forget specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_random_forget_fraction_must_be_strictly_between_0_and_1(fraction):
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        ForgetSpec("random", fraction=fraction)


def test_class_forget_needs_a_class_and_ignores_fraction():
    with pytest.raises(ValueError, match="at least one class"):
        ForgetSpec("class", classes=())
    spec = ForgetSpec("class", fraction=5.0, classes=(1, 3))  # fraction is irrelevant for class forgetting
    assert spec.label() == "class-1+3"
    assert spec.to_json() == {"kind": "class", "classes": [1, 3]}


def test_forget_spec_labels_and_json():
    spec = ForgetSpec("random", fraction=0.1)
    assert spec.label() == "random-10%"
    assert ForgetSpec("random", fraction=0.025).label() == "random-2.5%"
    assert spec.to_json() == {"kind": "random", "fraction": 0.1}


def test_suite_constructs_from_python():
    s = Suite(name="x", datasets=[])
    assert s.seeds == 3 and s.forget == [ForgetSpec("random")]


# -- variant-only parameters ---------------------------------------------------------------------------


def test_a_variants_with_table_sets_that_row_only_and_stays_out_of_its_label(tmp_path):
    from dememo import plugins
    from dememo.planning.planner import Planner

    tables = ('[[variants.poisoner.em]]\nmode = "sample"\nwith = { pgd_steps = 7, train_steps = 3 }\n'
              '[[variants.poisoner.em]]\nmode = "class"\n')
    rows = Planner(plugins.get_registry(), load_suite(write(tmp_path, tables=tables))).configure("poisoner", "em")
    by_label = {c.label: c.obj.params() for c in rows}
    assert set(by_label) == {"em(mode=sample)", "em(mode=class)"}
    assert (by_label["em(mode=sample)"]["pgd_steps"], by_label["em(mode=sample)"]["train_steps"]) == (7, 3)
    assert by_label["em(mode=class)"]["pgd_steps"] is None  # the other variant keeps the plugin's defaults


def test_a_variants_with_value_that_is_not_a_table_is_a_user_error(tmp_path):
    from dememo import plugins
    from dememo.planning.planner import Planner

    tables = '[[variants.poisoner.em]]\nmode = "sample"\nwith = 3\n[[variants.poisoner.em]]\nmode = "class"\n'
    planner = Planner(plugins.get_registry(), load_suite(write(tmp_path, tables=tables)))
    with pytest.raises(UserError, match=r"variants\.poisoner\.em\[0\]\.with must be a table"):
        planner.configure("poisoner", "em")


@pytest.mark.parametrize("value", ["[]", '""', "0", "false"])
def test_a_falsy_with_value_that_is_not_a_table_is_a_user_error_too(tmp_path, value):
    from dememo import plugins
    from dememo.planning.planner import Planner

    tables = f'[[variants.poisoner.em]]\nmode = "sample"\nwith = {value}\n[[variants.poisoner.em]]\nmode = "class"\n'
    planner = Planner(plugins.get_registry(), load_suite(write(tmp_path, tables=tables)))
    with pytest.raises(UserError, match=r"variants\.poisoner\.em\[0\]\.with must be a table"):
        planner.configure("poisoner", "em")


def test_variants_that_differ_only_in_with_are_a_user_error_not_a_dropped_row(tmp_path):
    from dememo import plugins
    from dememo.planning.planner import Planner

    tables = ('[[variants.poisoner.em]]\nmode = "sample"\nwith = { pgd_steps = 7 }\n'
              '[[variants.poisoner.em]]\nmode = "sample"\nwith = { pgd_steps = 9 }\n')
    planner = Planner(plugins.get_registry(), load_suite(write(tmp_path, tables=tables)))
    with pytest.raises(UserError, match="differ in their `with` parameters"):
        planner.configure("poisoner", "em")


def test_an_unknown_key_inside_with_names_the_with_table(tmp_path):
    from dememo import plugins
    from dememo.planning.planner import Planner

    tables = '[[variants.poisoner.em]]\nmode = "sample"\nwith = { pgd_stepz = 7 }\n[[variants.poisoner.em]]\nmode = "class"\n'
    planner = Planner(plugins.get_registry(), load_suite(write(tmp_path, tables=tables)))
    with pytest.raises(UserError, match=r"\.with"):
        planner.configure("poisoner", "em")
