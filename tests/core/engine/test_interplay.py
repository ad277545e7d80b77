"""The interplay track (poisoner × unlearner on a data owner's poisoned share) and its leaderboard rows.

End to end on digits with a 5-epoch recipe (one seed, about 10 s): the owner's share is the poisoned subset,
the clean target's forget set lies outside it, the retrain of the share target is one model for every
poisoner (its retain set is the clean rest), the model before unlearning is the one trained on the mixture,
and the owner-share metric reads the clean share.
"""

from __future__ import annotations

import math

import pytest
import torch
from support import bench, load

from dememo import plugins
from dememo.board.leaderboard import reference_rows, render
from dememo.errors import SuiteError
from dememo.planning.planner import Planner
from dememo.planning.suite import Interplay, load_suite
from dememo.results.record import records
from dememo.engine.runner import poison_subset

SUITE = """
name = "interplay-tiny"
seeds = 1
tracks = ["interplay"]

[[datasets]]
name = "digits"
architecture = "mlp"
recipe = { epochs = 5, batch_size = 128, lr = 0.05 }

[[forget]]
kind = "random"
fraction = 0.1

[references]
poisoner = ["none"]
unlearner = ["original", "retrain"]
attack = ["none"]

[interplay]
share = 0.4
clean_forget = 0.1
poisoners = ["none", "random-noise(mode=class)"]
unlearners = ["finetune"]

[[variants.poisoner.random-noise]]
mode = "sample"
[[variants.poisoner.random-noise]]
mode = "class"
"""


@pytest.fixture(scope="module")
def interplay_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("interplay")
    suite = base / "suite.toml"
    suite.write_text(SUITE)
    proc = bench("--all", "--suite", str(suite), "--metric", "unlearning-accuracy", "--metric", "owner-share",
                 "--metric", "avg-gap", "--metric", "mia-efficacy", "--out", str(base / "out"),
                 "--cache-dir", str(base / "cache"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load(base / "out"), proc.stdout, suite


def _cells(results, target=None, poisoner=None, unlearner=None):
    return [c for c in results["cells"] if c["track"] == "interplay"
            and (target is None or c["interplay_target"] == target)
            and (poisoner is None or c["poisoner"] == poisoner)
            and (unlearner is None or c["unlearner"] == unlearner)]


def test_plans_every_poisoner_unlearner_and_target(interplay_run):
    results, _, _ = interplay_run
    cells = _cells(results)
    rows = {(c["interplay_target"], c["poisoner"], c["unlearner"]) for c in cells}
    assert rows == {(t, p, u) for t in ("share", "clean") for p in ("none", "random-noise(mode=class)")
                    for u in ("original", "retrain", "finetune")}
    assert all(c["status"] == "ok" and c["attack"] == "none" for c in cells)
    assert {c["method"] for c in cells} >= {"random-noise(mode=class) → finetune", "none → retrain"}
    assert {c["forget"] for c in cells} == {"owner-40% (poisoned, forgotten)", "clean-10% (owner-40% poisoned)"}


def test_share_is_the_poisoned_subset_and_the_clean_forget_set_lies_outside(interplay_run):
    results, _, _ = interplay_run
    poisoned = _cells(results, "share", "random-noise(mode=class)", "finetune")[0]
    n_train = round(poisoned["poison_subset"]["count"] / 0.4)
    assert poisoned["forget_size"] == poisoned["poison_subset"]["count"] == round(0.4 * n_train)
    clean = _cells(results, "clean", "random-noise(mode=class)", "finetune")[0]
    assert clean["forget_size"] == round(0.1 * n_train)
    assert clean["poison_subset"] == poisoned["poison_subset"]  # the same owner share for both targets
    # the config records what is forgotten, so the two targets are different cells
    assert poisoned["params"]["forget"] == {"kind": "interplay", "target": "share", "share": 0.4}
    assert clean["params"]["forget"]["fraction"] == 0.1 and clean["key"] != poisoned["key"]


def test_before_unlearning_is_the_model_trained_on_the_mixture(interplay_run):
    results, _, _ = interplay_run
    for c in _cells(results, unlearner="original"):
        assert c["metrics"]["share_clean_gain"] == 0.0  # `original` is the reference it is compared with
    # with no poison the share's clean images are the forget set itself: the clean model memorized them
    none = _cells(results, "share", "none", "original")[0]["metrics"]
    assert none["share_clean_acc"] == none["forget_acc"] and none["share_clean_acc"] > 0.95
    # a class-wise shortcut on the share keeps the mixture model from memorizing its clean images
    poisoned = _cells(results, "share", "random-noise(mode=class)", "original")[0]["metrics"]
    assert poisoned["share_clean_acc"] < none["share_clean_acc"]


def test_the_share_targets_retrain_is_one_model_for_every_poisoner(interplay_run):
    """Forgetting the share leaves the clean rest: the paired retrain does not depend on the poison."""
    results, _, _ = interplay_run
    retrains = [c["metrics"] for c in _cells(results, "share", unlearner="retrain")]
    assert len(retrains) == 2
    for key in ("share_clean_acc", "retain_acc", "test_acc"):
        assert retrains[0][key] == retrains[1][key]
    assert all(m["avg_gap"] == 0.0 for m in retrains)


def test_leaderboard_has_interplay_tables_with_reference_rows(interplay_run):
    results, stdout, _ = interplay_run
    assert "Interplay — digits / mlp, forget set owner-40% (poisoned, forgotten)" in stdout
    assert "Interplay — digits / mlp, forget set clean-10% (owner-40% poisoned)" in stdout
    refs = reference_rows(results, records(_cells(results)))
    assert refs == {f"{p} → {u}" for p in ("none", "random-noise(mode=class)") for u in ("original", "retrain")}
    for line in stdout.splitlines():
        if line.startswith(("none → original", "none → retrain")):
            assert "*" not in line  # reference rows are never marked best
    assert render(results, "github").count("### Interplay") == 2


def test_interplay_needs_both_filters_to_run_with_others():
    """A poisoner filter alone selects the unlearnability track, an unlearner filter alone the unlearning
    track; both (or none) keep the interplay track."""
    from dememo.planning.planner import Filters

    suite = load_suite("quick")
    planner = Planner(plugins.get_registry(), suite)
    tracks = lambda f: {c.track for c in planner.cells(f, seeds=1)}  # noqa: E731
    assert "interplay" not in tracks(Filters(poisoner=("em",)))
    assert "interplay" not in tracks(Filters(unlearner=("finetune",)))
    both = planner.cells(Filters(poisoner=("em",), unlearner=("finetune",)), seeds=1)
    inter = [c for c in both if c.track == "interplay"]
    assert {c.poisoner.name for c in inter} == {"none", "em"} and {c.unlearner.name for c in inter} == {"original", "retrain", "finetune"}


def test_quick_suite_interplay_grid():
    suite = load_suite("quick")
    assert "interplay" in suite.tracks and suite.interplay.share == 0.5
    cells = [c for c in Planner(plugins.get_registry(), suite).cells(seeds=1) if c.track == "interplay"]
    assert {c.data.name for c in cells} == {"digits"}
    assert {c.poisoner.label for c in cells} == set(suite.interplay.poisoners)
    # class-level unlearners (e.g. spotter) need a class forget set: the share is a random subset
    assert all("random" in type(c.unlearner.obj).forget_kinds for c in cells)
    # parameters tuned for the suite's random forget set, and said so
    tuned = [c for c in cells if c.unlearner.name == "finetune"]
    assert tuned and all(c.selection["source"] == "tuned" for c in tuned)


@pytest.mark.parametrize("bad, message", [
    ({"share": 1.0}, "interplay share must be in (0, 1)"),
    ({"share": 0.5, "clean_forget": 0.6}, "interplay clean_forget must be in (0, 1 − share)"),
    ({"targets": ()}, "interplay targets must name at least one"),
])
def test_interplay_settings_are_checked(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Interplay(**bad)


def test_a_bad_interplay_section_is_a_one_line_suite_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(SUITE.replace("share = 0.4", "share = 1.5"))
    with pytest.raises(SuiteError, match="share must be in"):
        load_suite(str(path))
    path.write_text(SUITE.replace("[interplay]", "[interplay]\ntuned_from = \"class-0\""))
    with pytest.raises(SuiteError, match="tuned_from = 'class-0' is not a forget set"):
        Planner(plugins.get_registry(), load_suite(str(path))).cells()


def test_poison_subset_is_the_owner_share():
    """The share of the interplay track is the poisoned subset of the unlearnability track at that ratio."""
    a = poison_subset(1000, 0.5, "fp", 0)
    assert int(a.sum()) == 500 and torch.equal(a, poison_subset(1000, 0.5, "fp", 0))
    assert not math.isclose(float((a & poison_subset(1000, 0.5, "fp", 1)).sum()), 500)
