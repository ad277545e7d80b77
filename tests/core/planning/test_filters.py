"""How the run's filters narrow the shipped ``quick`` suite: within one filter the names are alternatives, filters
of different kinds all apply, plugin filters keep the reference rows and choose the tracks unless ``--track``
names them (the README's "How filters combine")."""

from __future__ import annotations

from collections import Counter

import pytest

from dememo import plugins
from dememo.errors import UserError
from dememo.planning.planner import Filters, Planner
from dememo.planning.suite import load_suite


@pytest.fixture(scope="module")
def planner():
    return Planner(plugins.get_registry(), load_suite("quick"))


def plan(planner, **given):
    return planner.cells(Filters(**{k: tuple(v) for k, v in given.items()}), seeds=1)


def test_dataset_forget_and_track_narrow_exactly(planner):
    every = plan(planner)
    cells = plan(planner, dataset=["digits"], forget=["class-0"])
    assert cells and {c.data.name for c in cells} == {"digits"} and {c.track for c in cells} == {"unlearning"}
    assert {c.forget_label for c in cells} == {"class-0"}
    assert {c.key for c in cells} == {c.key for c in every if c.data.name == "digits" and c.forget_label == "class-0"}
    only = plan(planner, track=["interplay"])
    assert {c.track for c in only} == {"interplay"}
    assert {c.key for c in only} == {c.key for c in every if c.track == "interplay"}
    share = plan(planner, forget=["share"])
    assert {c.track for c in share} == {"interplay"} and {c.target for c in share} == {"share"}


def test_plugin_filters_choose_the_tracks_unless_track_is_given(planner):
    alone = Counter(c.track for c in plan(planner, unlearner=["salun"]))
    both = Counter(c.track for c in plan(planner, unlearner=["salun"], poisoner=["none"]))
    assert set(alone) == {"unlearning"}  # an unlearner filter alone: the unlearning track
    assert set(both) == {"unlearnability", "unlearning", "interplay"} and both["unlearning"] == alone["unlearning"]
    pinned = Counter(c.track for c in plan(planner, unlearner=["salun"], poisoner=["none"], track=["unlearning"]))
    assert pinned == alone


def test_names_in_one_filter_are_alternatives_and_references_stay(planner):
    one = {c.method for c in plan(planner, unlearner=["salun"])}
    two = {c.method for c in plan(planner, unlearner=["salun", "scrub"])}
    assert one == {"original", "retrain", "salun"} and two == one | {"scrub"}


@pytest.mark.parametrize("given, message", [
    (dict(dataset=["Digits"]), r"--dataset 'Digits' \(did you mean 'digits'\?\): suite 'quick' has the datasets"),
    (dict(forget=["class-9"]), r"--forget 'class-9' \(did you mean 'class-0'\?\): suite 'quick' has the forget sets"),
    (dict(track=["interplay2"]), r"--track 'interplay2' \(did you mean 'interplay'\?\)"),
])
def test_an_unknown_name_is_one_line_with_the_closest(planner, given, message):
    with pytest.raises(UserError, match=message):
        plan(planner, **given)


def test_case_insensitive_did_you_mean():
    from dememo.errors import closest

    assert closest("EM", ["em", "rem", "tap"]) == "em"
    assert closest("Scrubb", ["scrub", "salun"]) == "scrub"
    assert closest("zzzz", ["scrub"]) is None
    with pytest.raises(UserError, match=r"unknown suite 'Quick' \(did you mean 'quick'\?\)"):
        load_suite("Quick")


def test_a_forget_set_with_only_the_unlearnability_track_is_an_error(planner):
    with pytest.raises(UserError, match="the unlearnability track has none"):
        plan(planner, forget=["class-0"], track=["unlearnability"])
