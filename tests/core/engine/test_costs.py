"""The per-stage cost model behind ``dememo-bench plan``'s estimate (``dememo.engine.costs``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo import plugins
from dememo.engine import costs
from dememo.planning.planner import Filters, Planner
from dememo.planning.suite import load_suite
from dememo.results import CellRecord


def record(seed=0, dataset="digits", unlearner="scrub", attack="none", timings=None, track="unlearning"):
    return CellRecord(track=track, dataset=dataset, method=unlearner, attack=attack, seed=seed, key=f"{seed}{unlearner}",
                      architecture="mlp", unlearner=unlearner, forget="random-10%",
                      params={"forget": {"kind": "random", "fraction": 0.1}}, timings=timings or {})


def test_a_stage_shared_by_cells_is_one_measurement():
    shared = {"seconds": 4.0, "cached": True, "key": "a" * 16}
    cells = [record(unlearner=f"u{i}", timings={"train": shared, "unlearn": {"seconds": 1.0, "cached": False,
                                                                             "key": f"{i:016d}"}}) for i in range(9)]
    cells.append(record(unlearner="r", timings={"train": {"seconds": 2.0, "cached": False, "key": "b" * 16}}))
    table = costs.summarise(cells)["digits/mlp"]
    assert table["train"][0] == 3.0  # the median of two trainings, not of ten cells reading one
    assert table["unlearn:*"][0] == 1.0


def test_summarise_takes_the_median_and_the_seeds_one_off_share():
    # seed 0: the first row pays 10 s of shared work; seed 1 the same; every other row 1 s
    cells = [record(seed=s, unlearner=f"u{i}", timings={"metric:u-lira": {"seconds": 11.0 if i == 0 else 1.0,
                                                                        "cached": i > 0, "key": f"{s}{i:015d}"}})
             for s in (0, 1) for i in range(5)]
    table = costs.summarise(cells)["digits/mlp"]
    assert table["metric:u-lira@unlearning"] == [1.0, 10.0, 2]  # typical, once, seeds
    assert table["metric:u-lira"] == [1.0, 10.0, 2] and table["metric:*"][0] == 1.0


@given(st.lists(st.floats(0.001, 100), min_size=1, max_size=20))
@settings(max_examples=40, deadline=None)
def test_typical_is_the_median_of_one_seed(values):
    import statistics

    cells = [record(unlearner=f"u{i}", timings={"unlearn": {"seconds": v, "cached": False, "key": f"{i:016d}"}})
             for i, v in enumerate(values)]
    typical, once, n = costs.summarise(cells)["digits/mlp"]["unlearn:*"]
    assert typical == pytest.approx(statistics.median(values), abs=1e-4) and n == 1


def test_lookup_falls_back_from_label_to_name_to_kind_to_other_datasets():
    table = costs.CostTable({"digits/mlp": {"unlearn:scrub@random": [2.0, 0, 1], "unlearn:scrub": [3.0, 0, 1],
                                            "unlearn:*": [5.0, 0, 1]},
                             "shapes/cnn": {"attack:*": [7.0, 0, 1]}}, "test")
    assert table.lookup("digits/mlp", "unlearn:scrub@random") == ([2.0, 0, 1], "exact")
    assert table.lookup("digits/mlp", "unlearn:scrub@class") == ([3.0, 0, 1], "plugin")
    assert table.lookup("digits/mlp", "unlearn:scrub(lr=0.1)@class") == ([3.0, 0, 1], "plugin")
    assert table.lookup("digits/mlp", "unlearn:salun@class") == ([5.0, 0, 1], "kind")
    assert table.lookup("digits/mlp", "attack:relearn") == ([7.0, 0.0, 1], "kind on other datasets")
    assert table.lookup("digits/mlp", "poison:em") is None


def test_the_shipped_table_covers_the_shipped_suites():
    table = costs.shipped_table()
    assert {"digits/mlp", "noisy-shapes/small-cnn", "mnist-10k/lenet"} <= set(table.table)
    assert "2-core" in table.source
    for ctx in table.table.values():
        assert ctx["train"][0] > 0 and ctx["unlearn:*"][0] >= 0


@pytest.fixture(scope="module")
def tiny_cells(tmp_path_factory):
    from support import TINY_SUITE

    path = tmp_path_factory.mktemp("costs") / "tiny.toml"
    path.write_text(TINY_SUITE)
    suite = load_suite(str(path))
    return suite, Planner(plugins.get_registry(), suite).cells(Filters(unlearner=("finetune", "gradient-ascent"),
                                                                         attack=("none",)), seeds=1)


def test_stages_shared_by_cells_are_counted_once(tiny_cells):
    suite, cells = tiny_cells
    flat = costs.CostTable({"digits/mlp": {"train": [1.0, 0, 1], "unlearn:*": [1.0, 0, 1], "metric:*": [0.0, 0, 1]}})
    est, shares = costs.estimate(cells, set(), [flat], suite.references["poisoner"])
    forget_sets = {c.forget_label for c in cells}
    rows = {c.unlearner.label for c in cells}
    # one original training and one retrain per forget set, whatever the rows; one unlearning per row and set
    assert est.stages["train"] == 1 + len(forget_sets) and est.stages["unlearn"] == len(rows) * len(forget_sets)
    assert est.seconds == pytest.approx(est.stages["train"] + est.stages["unlearn"])
    assert sum(shares.values()) == pytest.approx(est.seconds)
    first = next(c for c in cells)
    assert shares[first.key] >= 2.0  # the first cell carries the shared trainings


def test_cached_cells_cost_nothing_and_their_stages_count_as_done(tiny_cells):
    suite, cells = tiny_cells
    flat = costs.CostTable({"digits/mlp": {"train": [1.0, 0, 1], "unlearn:*": [1.0, 0, 1], "metric:*": [0.0, 0, 1]}})
    original = next(c for c in cells if c.unlearner.name == "original")
    est, shares = costs.estimate(cells, {original.key}, [flat], suite.references["poisoner"])
    # its original training and its forget set's retrain are done: the other forget sets' retrains are left
    assert original.key not in shares and est.stages.get("train", 0) == len({c.forget_label for c in cells}) - 1
    everything = costs.estimate(cells, {c.key for c in cells}, [flat])[0]
    assert everything.seconds == 0 and not everything.stages


def test_a_stage_no_table_knows_is_a_named_guess(tiny_cells):
    suite, cells = tiny_cells
    est, _ = costs.estimate(cells, set(), [costs.CostTable()], suite.references["poisoner"])
    assert est.seconds == pytest.approx(costs.FALLBACK_SECONDS * sum(est.stages.values()))
    assert "train on digits/mlp" in est.guessed and not est.sources


def test_record_costs_keeps_the_last_measurements_per_device(tmp_path):
    cells = [record(unlearner="scrub", timings={"unlearn": {"seconds": float(i), "cached": False},
                                                "train": {"seconds": 9.0, "cached": True}}) for i in range(30)]
    costs.record_costs(tmp_path, cells, "cpu")
    kept = costs.local_samples(tmp_path, "cpu")["digits/mlp"]
    assert kept["unlearn:scrub@random"] == [float(i) for i in range(5, 30)]  # the last KEEP = 25
    assert "train" not in kept  # read from the cache: not measured by this run
    assert costs.local_samples(tmp_path, "cuda") == {}
    table = costs.local_table(tmp_path, "cpu")
    assert table.lookup("digits/mlp", "unlearn:scrub@random")[0][0] == 17.0
    (tmp_path / costs.CACHE_FILE).write_text("not json")
    costs.record_costs(tmp_path, cells[:1], "cpu")  # a damaged file is replaced, never an error
    assert json.loads((tmp_path / costs.CACHE_FILE).read_text())["devices"]["cpu"]["digits/mlp"]["unlearn:*"] == [0.0]


def test_results_compute_counts_each_stage_once():
    shared = {"seconds": 4.0, "cached": True, "key": "a" * 16}
    cells = [record(unlearner="x", timings={"train": {**shared, "cached": False}, "unlearn": {"seconds": 1.0,
                                                                                          "cached": False, "key": "b" * 16}}),
             record(unlearner="y", timings={"train": shared, "unlearn": {"seconds": 2.0, "cached": False,
                                                                        "key": "c" * 16}})]
    assert costs.results_compute(cells) == pytest.approx(7.0)
    assert costs.compute_seconds(cells) == pytest.approx(7.0)
    assert costs.results_compute([record(timings={"train": {"seconds": 1.0, "cached": True}})]) is None


def test_an_estimate_from_a_runs_own_timings_predicts_that_run(tmp_path):
    """Calibrated on a cold run's own stage timings, the estimate of the same plan on an empty cache is within a
    factor of 2 of the compute that run did: the stage model names the stages the runner computes."""
    import dememo
    from support import TINY_SUITE

    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    narrow = dict(unlearners=["finetune", "gradient-ascent"], poisoners=["random-noise"], attacks=["none", "weight-noise"],
                  jobs=1, progress=False)
    res = dememo.run(str(suite), out=tmp_path / "out", cache_dir=tmp_path / "cache", **narrow)
    did = costs.compute_seconds(res.cells)
    table = costs.CostTable(costs.summarise(res.cells), "the run itself")
    fresh = dememo.plan(str(suite), cache_dir=tmp_path / "empty", **narrow)
    est, _ = costs.estimate(fresh.cells, set(), [table], ["none"])
    assert did > 0 and 0.5 <= est.seconds / did <= 2.0, (est, did)


def test_a_measurement_in_any_table_wins_over_a_guess_from_its_kind():
    local = costs.CostTable({"digits/mlp": {"unlearn:finetune": [0.5, 0, 1], "unlearn:*": [0.5, 0, 1]}}, "local")
    shipped = costs.CostTable({"digits/mlp": {"unlearn:scrub@class": [0.12, 0, 1]}}, "shipped")
    assert local.lookup("digits/mlp", "unlearn:scrub@class", kinds=False) is None
    assert shipped.lookup("digits/mlp", "unlearn:scrub@class", kinds=False) == ([0.12, 0, 1], "exact")
    assert local.lookup("digits/mlp", "unlearn:scrub@class") == ([0.5, 0, 1], "kind")


def test_estimate_prefers_the_shipped_measurement_to_a_local_kind_median(tiny_cells):
    suite, cells = tiny_cells
    local = costs.CostTable({"digits/mlp": {"unlearn:*": [100.0, 0, 1], "train": [1.0, 0, 1], "metric:*": [0, 0, 1]}})
    shipped = costs.CostTable({"digits/mlp": {"unlearn:finetune": [2.0, 0, 1], "unlearn:gradient-ascent": [2.0, 0, 1],
                                              "unlearn:original": [2.0, 0, 1], "unlearn:retrain": [2.0, 0, 1]}}, "shipped")
    est, _ = costs.estimate(cells, set(), [local, shipped], suite.references["poisoner"])
    assert est.by_kind["unlearn"] == pytest.approx(2.0 * est.stages["unlearn"])


def test_interplay_clean_target_retrains_are_one_per_poisoner():
    suite = load_suite("quick")
    planner = Planner(plugins.get_registry(), suite)
    cells = planner.cells(Filters(unlearner=("finetune",), poisoner=("em", "tap"), track=("interplay",),
                                  forget=("clean",)), seeds=1)
    poisoners = {c.poisoner.label for c in cells}
    retrains = {s.ident for c in cells for s in costs.cell_stages(c, suite.references["poisoner"])
                if s.ident[2] == "train" and s.ident[3][0] == "retain"}
    # one retrain per poisoner whose mixture differs from the clean data (the reference `none` shares the clean one)
    assert len(retrains) == len(poisoners) and len(poisoners) >= 3


@pytest.mark.parametrize("content", ['[1, 2]', '{"schema": "dememo.costs/1", "devices": {"cpu": [1]}}',
                                     '{"schema": "dememo.costs/1", "devices": {"cpu": {"d/m": {"train": 3}}}}',
                                     '{"schema": "dememo.costs/1", "devices": {"cpu": {"d/m": {"train": ["x"]}}}}'])
def test_a_damaged_cost_file_reads_as_empty_and_is_replaced(tmp_path, content):
    (tmp_path / costs.CACHE_FILE).write_text(content)
    assert costs.local_samples(tmp_path, "cpu") == {} and costs.local_table(tmp_path, "cpu").table == {}
    costs.record_costs(tmp_path, [record(timings={"unlearn": {"seconds": 1.0, "cached": False}})], "cpu")
    assert costs.local_samples(tmp_path, "cpu")["digits/mlp"]["unlearn:scrub@random"] == [1.0]
