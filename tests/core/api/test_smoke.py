"""``--smoke`` (``RunOptions(smoke=True)``): a plugin author's check in under a minute. It stands for a plain run
of the ``smoke`` suite with one seed, the named plugins, and the suite's reference rows for every family no
filter names, so workers and the cache see an ordinary run."""

from __future__ import annotations

from collections import Counter

import pytest

from dememo.api.launch import Launch
from dememo.api.options import RunOptions, for_smoke
from dememo.errors import UserError
from dememo.planning.suite import load_suite

REFERENCES = {"poisoner": ["none"], "unlearner": ["original", "retrain"], "attack": ["none"]}


def test_smoke_fills_the_families_no_filter_names_with_the_references():
    unlearner = for_smoke(RunOptions(smoke=True, unlearners="scrub"), REFERENCES)
    assert (unlearner.suite, unlearner.seeds, unlearner.smoke) == ("smoke", 1, False)
    assert unlearner.unlearners == ("scrub",) and unlearner.attacks == ("none",) and unlearner.poisoners == ("none",)
    metric = for_smoke(RunOptions(smoke=True, metrics="tow", seeds=2), REFERENCES)
    assert metric.seeds == 2 and metric.poisoners == ("none",) and metric.unlearners == ("original", "retrain")
    attack = for_smoke(RunOptions(smoke=True, attacks="relearn", suite="quick"), REFERENCES)
    assert attack.suite == "quick" and attack.attacks == ("relearn",) and attack.unlearners == ("original", "retrain")


def test_the_suite_defaults_to_quick_and_to_smoke_with_smoke():
    assert RunOptions().suite == "quick" and RunOptions(smoke=True).suite == "smoke"
    with pytest.raises(UserError, match="smoke must be True or False"):
        RunOptions(smoke="yes")


def plan(**options):
    return Launch(RunOptions(smoke=True, progress=False, **options)).cells


def test_an_unlearner_smoke_is_its_rows_and_the_references_on_every_track():
    cells = plan(unlearners="scrub")
    assert {c.track for c in cells} == {"unlearnability", "unlearning", "interplay"} and {c.seed for c in cells} == {0}
    unlearning = [c for c in cells if c.track == "unlearning"]
    assert {c.method for c in unlearning} == {"original", "retrain", "scrub"}
    assert {c.forget_label for c in unlearning} == {"random-10%", "class-0"} and {c.attack.name for c in cells} == {"none"}
    assert {c.method for c in cells if c.track == "interplay"} == {"none → original", "none → retrain", "none → scrub"}
    assert {c.method for c in cells if c.track == "unlearnability"} == {"none"}
    assert {c.data.name for c in cells} == {"digits"} and load_suite("smoke").seeds == 1


def test_a_poisoner_smoke_has_its_interplay_rows_too():
    cells = plan(poisoners="ops")
    assert {c.method for c in cells if c.track == "unlearnability"} == {"none", "ops"}
    assert {"ops → original", "ops → retrain"} <= {c.method for c in cells if c.track == "interplay"}


def test_an_attack_or_metric_smoke_runs_on_the_reference_rows_of_every_track():
    attack = plan(attacks="weight-noise")
    assert set(Counter(c.track for c in attack)) == {"unlearnability", "unlearning", "interplay"}
    assert {c.method for c in attack if c.track == "unlearning"} == {"original", "retrain"}
    assert {c.attack.name for c in attack} == {"none", "weight-noise"}
    metric = plan(metrics="tow")  # ToW is on the unlearning and interplay tracks, and reads unlearning-accuracy
    assert {(c.track, c.method) for c in metric} == {("unlearning", "original"), ("unlearning", "retrain"),
                                                     ("interplay", "none → original"), ("interplay", "none → retrain")}
    assert {m.name for c in metric for m in c.metrics} == {"tow", "unlearning-accuracy"}


def test_the_python_api_takes_smoke_too(tmp_path):
    import dememo

    plan = dememo.plan(smoke=True, unlearners="scrub", progress=False, cache_dir=tmp_path / "cache")
    assert plan.suite == "smoke" and {c.seed for c in plan.cells} == {0}
    assert {c.method for c in plan.cells if c.track == "unlearning"} == {"original", "retrain", "scrub"}
