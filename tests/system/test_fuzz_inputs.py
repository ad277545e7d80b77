"""Hostile and malformed input (issue 9): every input edge fuzzed with hypothesis, plus the findings as
explicit regressions.

The case generators and the per-case checks are ``tests/qa/fuzz.py`` (``fuzz_report`` runs the same
properties for the README's figures). One property per edge:

- ``--set`` values: ``parse_sets``/``parse_label``, planning a suite with them, and ``dememo-bench --set``;
- suite files: ``load_suite`` on mutated TOML documents and bytes, then planning the suite;
- ``results.json``: ``load_results`` and every reader (tables, CSV, JSON, report figures, bundle), and
  ``dememo-bench submit`` / ``report`` (exit 2 with one line, nothing written);
- submission bundles: ``load_bundle``, ``check_bundle``/``verify``, ``dememo-bench verify`` and
  ``leaderboard build`` (no partial board);
- dataset files in their real formats (CIFAR pickles, MNIST idx, SVHN .mat), mutated, read by the
  plugins; a pickle that would run code is refused, never run.

Every case must end in correct handling or a one-line UserError (CLI: exit 2, one ``dememo-bench: error:``
line, no traceback) within ``fuzz.CASE_SECONDS``. Examples per property: ``DEMEMO_FUZZ_EXAMPLES`` (default
below); the draws are derandomized, so CI sees the same cases every time. Measured on one shared core:
about 30 s for the file, 4 s of it the tiny seed run.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from qa import fuzz

from dememo.results.aggregate import stats
from dememo.board import leaderboard, report, submission
from dememo.errors import DatasetError, ParameterError, SuiteError, UserError
from dememo.files import write_files
from dememo.hashing import digest
from dememo.params import build, parse_sets, parse_value
from dememo.planning.suite import load_suite
from dememo.results import load_results
from dememo.training import Recipe

#: the slow group (`python -m pytest -m slow`, run by .ci/run after the default fast group)
pytestmark = pytest.mark.slow

pytest.importorskip("torchvision")


def examples(default: int) -> int:
    return int(os.environ.get("DEMEMO_FUZZ_EXAMPLES", default))


def fuzzed(n: int):
    return settings(max_examples=examples(n), deadline=30_000, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with fuzz.environment(DEMEMO_PROGRESS="0", DEMEMO_HTML_PLOTS="0"):
        yield fuzz.FuzzEnv.create(tmp_path_factory.mktemp("fuzz"))


def handled(outcome: fuzz.Outcome) -> None:
    assert outcome.handled and not outcome.lost, f"[{outcome.kind}] {outcome.detail}"


def one_line_error(exc_type, fn, *args, **kwargs) -> str:
    with pytest.raises(exc_type) as err:
        fn(*args, **kwargs)
    message = str(err.value)
    assert fuzz.one_line(message), repr(message)
    return message


# -- the properties ----------------------------------------------------------------------------------------


@fuzzed(150)
@given(case=fuzz.SET_CASES)
def test_set_values(env, case):
    handled(fuzz.run_set_case(env, case))


@fuzzed(150)
@given(case=fuzz.SUITE_CASES)
def test_suite_files(env, case):
    handled(fuzz.run_suite_case(env, case))


@fuzzed(100)
@given(case=fuzz.RESULTS_CASES)
def test_results_json(env, case):
    handled(fuzz.run_results_case(env, case))


@fuzzed(80)
@given(case=fuzz.BUNDLE_CASES)
def test_bundles(env, case):
    handled(fuzz.run_bundle_case(env, case))


@fuzzed(150)
@given(case=fuzz.DATASET_CASES)
def test_dataset_files(env, case):
    handled(fuzz.run_dataset_case(env, case))


def test_fuzz_report_counts_cases_per_group(env):
    report_ = fuzz.fuzz_report(4, env=env)
    assert list(report_) == list(fuzz.GROUPS)
    for group, counts in report_.items():
        assert counts == {"tried": counts["tried"], "handled": counts["tried"], "lost": 0} and counts["tried"] >= 1, group


def test_unhandled_endings_are_counted_by_kind():
    def type_error():
        raise TypeError("x")

    def two_lines():
        raise UserError("two\nlines")

    outcomes = [fuzz.attempt(type_error), fuzz.attempt(two_lines), fuzz.attempt(lambda: None)]
    assert fuzz.summarize(outcomes) == {"tried": 3, "handled": 1, "lost": 0, "unhandled:TypeError": 1,
                                        "unhandled:multi-line error": 1}


# -- dataset files: pickles are data, never code ------------------------------------------------------------


def test_hostile_cifar_pickle_is_refused_and_never_run(tmp_path):
    """A CIFAR batch whose ``data`` unpickles to ``os.system("touch MARKER")``: torchvision's plain
    ``pickle.load`` would run it; dememo refuses the file with one line naming the call, and nothing runs."""
    marker = tmp_path / "executed"
    where, mutation, name = fuzz.write_dataset("cifar10", tmp_path / "data", fuzz.CIFAR_MUTATIONS.index("hostile-system"),
                                               0, [], marker)
    assert mutation == "hostile-system"
    cls = fuzz._dataset_class("cifar10")
    with fuzz.patched_checksums("cifar10", where):  # the MD5s match: only the unpickler stands in the way
        message = one_line_error(DatasetError, cls(val_size=5).load, tmp_path / "data", download=False)
    assert "posix.system" in message and name in message and "refused" in message
    assert not marker.exists()
    pickle.loads((where / name).read_bytes(), encoding="latin1")  # the payload is live: a plain load runs it
    assert marker.exists()


@pytest.mark.parametrize("mutation", ["hostile-eval", "hostile-import"])
def test_other_hostile_globals_are_refused(tmp_path, mutation):
    marker = tmp_path / "executed"
    where, _, _ = fuzz.write_dataset("cifar100", tmp_path / "data", fuzz.CIFAR_MUTATIONS.index(mutation), 0, [], marker)
    with fuzz.patched_checksums("cifar100", where):
        message = one_line_error(DatasetError, fuzz._dataset_class("cifar100")(val_size=5).load, tmp_path / "data",
                                 download=False)
    assert "__builtin__." in message and not marker.exists()


@pytest.mark.parametrize(("dataset", "mutation", "says"), [
    ("cifar10", "float-data", "uint8 N×3072"),
    ("cifar10", "string-labels", "labels are not a list of integers"),
    ("cifar10", "count-mismatch", "6 images but 5 labels"),
    ("cifar10", "list-top", "not a dict"),
    ("cifar10", "protocol-5", None),  # a Python-3 pickle of a well-formed batch reads fine
    ("mnist", "train-test-size", "different shapes"),
    ("svhn", "float-x", "uint8 N×C×H×W expected, got float64"),
    ("svhn", "x-3d", "corrupt or truncated"),
])
def test_dataset_content_checks(tmp_path, dataset, mutation, says):
    muts = {"cifar10": fuzz.CIFAR_MUTATIONS, "mnist": fuzz.MNIST_MUTATIONS, "svhn": fuzz.SVHN_MUTATIONS}[dataset]
    where, _, _ = fuzz.write_dataset(dataset, tmp_path / "data", muts.index(mutation), 1, [], tmp_path / "m")
    cls = fuzz._dataset_class(dataset)
    with fuzz.patched_checksums(dataset, where):
        if says is None:
            assert len(cls(val_size=5).load(tmp_path / "data", download=False).train) == fuzz.N_TRAIN - 5
        else:
            assert says in one_line_error(DatasetError, cls(val_size=5).load, tmp_path / "data", download=False)


# -- --set values and suite files ----------------------------------------------------------------------------


def test_set_value_nested_too_deeply_is_one_line():
    assert "nested too deeply" in one_line_error(ParameterError, parse_value, "[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in one_line_error(ParameterError, parse_sets, ["em.eps=" + "[" * 100_000])


@pytest.mark.parametrize("value", ["NaN", "nan"])
def test_nan_floats_are_refused(value):
    message = one_line_error(ParameterError, build, Recipe, parse_sets([f"recipe.lr={value}"])["recipe"], "$.recipe")
    assert "NaN" in message and "$.recipe.lr" in message


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "1e999", "inf"])
def test_infinite_floats_meet_the_plugins_range_checks(value):
    """±inf is a meaningful value for some parameters (certified-newton's epsilon = inf: no noise); where it
    is not, the owner's validation refuses it in one line (a recipe's lr must be finite)."""
    message = one_line_error(ParameterError, build, Recipe, parse_sets([f"recipe.lr={value}"])["recipe"], "$.recipe")
    assert "finite lr" in message or "lr ≥ 0" in message
    from dememo import plugins

    newton = plugins.get_registry().get("unlearner", "certified-newton")
    assert build(newton, parse_sets(["certified-newton.epsilon=inf"])["certified-newton"], "$.x").epsilon == math.inf


def test_huge_numbers_and_odd_text_name_the_field():
    assert "beyond the range of floats" in one_line_error(ParameterError, build, Recipe, {"lr": 10**400}, "$.recipe")
    assert "expected int" in one_line_error(ParameterError, build, Recipe, {"epochs": "1" * 5000}, "$.recipe")
    assert "expected float, got 'fast'" in one_line_error(ParameterError, build, Recipe, {"lr": "fast"}, "$.recipe")


@pytest.mark.parametrize(("content", "says"), [
    ('name = "x"\n'.encode("utf-16"), "not UTF-8"),
    (b"seeds = " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    (b"seeds = " + b"1" * 5000, "not valid TOML"),
    (b'name = "x"\nseeds = 1000000000\n[[datasets]]\nname = "digits"\narchitecture = "mlp"\n', "seeds must be ≤"),
    (b'name = "x"\n"a\\nb" = 1\n[[datasets]]\nname = "digits"\narchitecture = "mlp"\n', "a\\nb"),
    (b'name = "x"\n[[datasets]]\nname = "digits"\narchitecture = "mlp"\n[tuned]\nentries = [1]\n', "entry 0 is not an object"),
])
def test_suite_file_findings(tmp_path, content, says):
    path = tmp_path / "suite.toml"
    path.write_bytes(content)
    assert says in one_line_error(SuiteError, load_suite, str(path))


def test_a_suite_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_bytes(b"\xef\xbb\xbf" + fuzz.RUN_SUITE.encode())
    assert load_suite(str(path)).name == "fuzz"


def test_a_device_is_neither_a_tuning_file_nor_results(tmp_path):
    """``/dev/zero`` would be read forever."""
    path = tmp_path / "suite.toml"
    path.write_text('tuning = "/dev/zero"\n' + fuzz.RUN_SUITE)
    assert "is not a file" in one_line_error(SuiteError, load_suite, str(path))
    assert "not a regular file" in one_line_error(UserError, load_results, "/dev/zero")


def test_seed_limits_agree():
    from dememo import results
    from dememo.planning import suite
    assert results.MAX_SEEDS == suite.MAX_SEEDS


def test_a_directory_is_not_a_suite(tmp_path):
    (tmp_path / "d.toml").mkdir()
    assert "is a directory" in one_line_error(SuiteError, load_suite, str(tmp_path / "d.toml"))


# -- results.json ----------------------------------------------------------------------------------------


def _write(tmp_path, text: str):
    (tmp_path / "results.json").write_bytes(text.encode("utf-8", "surrogatepass"))
    return tmp_path


@pytest.mark.parametrize(("edit", "says"), [
    (lambda d: d["cells"][0]["metrics"].update(test_acc=float("nan")), "NaN"),
    (lambda d: d["cells"][0]["metrics"].update(test_acc=10**400), "not a number within"),
    (lambda d: d["cells"][0]["metrics"].update(test_acc=1e308), "not a number within"),
    (lambda d: d["cells"][0].update(method="\ud800"), "lone surrogate"),
    (lambda d: d["cells"][0].update(metrics=fuzz.Deep(100_000)), "nested too deeply"),
    (lambda d: d["cells"][0].update(metrics=fuzz.Deep(100)), "nested more than 64 levels"),
    (lambda d: d["cells"].__setitem__(0, 5), "cell 0: is a int"),
    (lambda d: d["cells"][0].update(selection={"source": [1]}), "selection.source"),
    (lambda d: d["suite"].update(curves=[{"attack": 1}]), "suite.curves"),
    (lambda d: d["plugins"].__setitem__(0, {"family": "metric"}), "plugin 0"),
    (lambda d: d["columns"]["unlearnability"]["test_acc"].update(cap="x"), "cap is not a number"),
])
def test_results_findings(env, tmp_path, edit, says):
    doc = copy.deepcopy(env.results)
    edit(doc)
    message = one_line_error(UserError, load_results, _write(tmp_path, fuzz.to_json_text(doc)))
    assert says in message


def test_curve_with_an_undefined_metric_is_left_out(env):
    """A weight-noise cell whose test accuracy came out undefined (null) used to crash the AUC table."""
    doc = copy.deepcopy(env.results)
    noisy = [c for c in doc["cells"] if c["attack"].startswith("weight-noise") and c["track"] == "unlearnability"]
    noisy[0]["metrics"]["test_acc"] = None
    assert "AUC over sigma" in leaderboard.render(doc) and leaderboard.to_csv(doc)


def test_statistics_of_values_near_the_float_limit():
    assert stats([1e308, 1e308, -1e308])[0] == pytest.approx(1e308 / 3)
    assert stats([10**400, None, float("nan")]) == (None, None, 0)


# -- outputs are all or nothing --------------------------------------------------------------------------


def test_report_draws_everything_before_writing(env, tmp_path, monkeypatch):
    calls = []

    def failing_svg(self):
        calls.append(self.name)
        if len(calls) == 2:
            raise RuntimeError("drawing failed")
        return b"<svg/>"

    monkeypatch.setattr(report.Figure, "svg", failing_svg)
    with pytest.raises(RuntimeError):
        report.write_report(env.results, tmp_path / "out")
    assert len(calls) == 2 and not (tmp_path / "out").exists()


def test_board_renders_everything_before_writing(env, tmp_path, monkeypatch):
    import dememo.board.html as html

    (tmp_path / "entries").mkdir()
    (tmp_path / "entries" / "entry.json").write_bytes(env.bundle_bytes)
    monkeypatch.setattr(html, "render_page", lambda results: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        submission.build_board(tmp_path / "entries", tmp_path / "board")
    assert not (tmp_path / "board").exists()


def test_a_file_that_cannot_be_written_takes_the_others_back(tmp_path):
    (tmp_path / "out" / "b.txt").mkdir(parents=True)  # os.replace cannot put a file there
    message = one_line_error(UserError, write_files, tmp_path / "out", {"a.txt": "a", "b.txt": "b"})
    assert "cannot write the board" in message
    assert not (tmp_path / "out" / "a.txt").exists() and not list((tmp_path / "out").glob(".*tmp"))


# -- bundles ---------------------------------------------------------------------------------------------


def _rehashed(bundle: dict) -> dict:
    bundle["suite_fingerprint"] = digest(bundle["suite"])
    bundle["content_sha256"] = submission.content_hash(bundle)
    return bundle


@pytest.mark.parametrize(("edit", "says"), [
    (lambda b: b["cells"][0]["metrics"].update(test_acc=10**400), "not a number within"),
    (lambda b: b["suite"]["datasets"][0].update(name=[1]), "not a suite dememo can read"),
    (lambda b: b["suite"].update(forget="abc"), "not a suite dememo can read"),
    (lambda b: b["suite"].update(headline={"unlearnability": 5}), "not a suite dememo can read"),
    (lambda b: b["cells"][0].update(selection={"source": [1]}), "selection.source"),
    (lambda b: b["suite"].update(tuned={"entries": [1]}), "entry 0 is not an object"),
])
def test_bundle_findings(env, tmp_path, edit, says):
    b = copy.deepcopy(env.bundle)
    edit(b)
    checks = submission.check_bundle(_rehashed(b))
    assert [c.name for c in checks] == ["schema"] and not checks[0].ok and says in checks[0].detail
    (tmp_path / "entries").mkdir()
    (tmp_path / "entries" / "x.json").write_text(json.dumps(b))
    assert "schema check failed" in one_line_error(UserError, submission.build_board, tmp_path / "entries", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_bundle_nested_deeply_is_refused_at_load(tmp_path):
    (tmp_path / "b.json").write_text('{"a": ' + "[" * 200 + "]" * 200 + "}")
    assert "nested more than" in one_line_error(UserError, submission.load_bundle, tmp_path / "b.json")


def test_genuine_inputs_pass(env):
    """The unmutated seed inputs are handled as data, not errors (the fuzzer's baseline)."""
    assert all(c.ok for c in submission.check_bundle(env.bundle))
    assert len(env.bundle["cells"]) == len(env.results["cells"])  # every plugin of the seed run is dememo's
    handled(fuzz.run_results_case(env, {"mode": "bytes", "ops": [], "report": True}))
