"""The Python API (``dememo.run``, ``dememo.plan``, ``dememo.load_results``) as a notebook user meets it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dememo
from dememo.api import Results, RunOptions
from dememo.errors import UserError

NARROW = dict(poisoners="random-noise", unlearners="finetune", attacks=["none", "weight-noise"],
              metrics=["clean-accuracy", "unlearning-accuracy"], jobs=1, progress=False)


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    from support import TINY_SUITE

    tmp = tmp_path_factory.mktemp("api")
    suite = tmp / "tiny.toml"
    suite.write_text(TINY_SUITE)
    res = dememo.run(str(suite), out=tmp / "out", cache_dir=tmp / "cache", **NARROW)
    return suite, tmp, res


def test_run_returns_the_results_it_wrote(api_run):
    _, tmp, res = api_run
    assert isinstance(res, Results) and not res.partial and not res.failed
    on_disk = json.loads((tmp / "out" / "results.json").read_text())
    assert sorted(c["key"] for c in on_disk["cells"]) == sorted(c.key for c in res.cells)
    # random-noise's two variants and the reference: the unlearnability rows; finetune and the references
    assert {c.method for c in res.cells if c.track == "unlearnability"} == {
        "none", "random-noise(mode=class)", "random-noise(mode=sample)"}
    assert {c.method for c in res.cells if c.track == "unlearning"} == {"original", "retrain", "finetune"}
    assert {c.attack for c in res.cells} == {"none", "weight-noise"}  # one variant: its label shows no parameter
    assert repr(res).startswith("<Results suite 'tiny': ") and "0 failed" in repr(res)


def test_table_is_the_leaderboard_table_with_its_numbers(api_run):
    _, _, res = api_run
    assert ("unlearning", "digits", "random-10%") in res.tables()
    table = res.table("unlearning", "digits", "random-10%")
    assert table.header[0] == "method" and [r[0] for r in table.rows][:2] == ["original", "retrain"]
    cells = [c for c in res.cells if c.method == "finetune" and c.attack == "none" and c.track == "unlearning"]
    assert table.values["finetune"]["forget_acc"] == pytest.approx(sum(c.metrics["forget_acc"] for c in cells) / len(cells))
    shown = next(r for r in table.rows if r[0] == "finetune")
    assert f"{100 * table.values['finetune']['test_acc']:.1f}" in " ".join(shown)
    assert "finetune" in str(table) and table._repr_markdown_().startswith("**Unlearning")


def test_a_missing_table_is_a_one_line_error_naming_the_tables(api_run):
    _, _, res = api_run
    with pytest.raises(UserError, match=r"no table \(unlearning, digits, class-0\).*tables: \(unlearnability, digits"):
        res.table("unlearning", "digits", "class-0")


def test_to_records_is_one_flat_row_per_cell(api_run):
    _, _, res = api_run
    rows = res.to_records()
    assert len(rows) == len(res.cells)
    row = next(r for r in rows if r["method"] == "finetune" and r["attack"] == "none" and r["track"] == "unlearning")
    assert row["unlearner"] == "finetune" and row["forget"] == "random-10%" and row["seed"] == 0
    assert isinstance(row["forget_acc"], float) and row["status"] == "ok"
    assert all(not isinstance(v, (dict, list)) for r in rows for v in r.values())  # flat: a data frame's row


def _test_accuracy(model: torch.nn.Module) -> float:
    from dememo import plugins

    splits = plugins.get_registry().get("dataset", "digits")().load(Path("."), False)
    with torch.no_grad():
        return (model(splits.test.x).argmax(1) == splits.test.y).float().mean().item()


def test_model_is_the_one_the_cell_evaluated(api_run):
    _, _, res = api_run
    for method, track in (("finetune", "unlearning"), ("random-noise(mode=class)", "unlearnability")):
        cell = next(c for c in res.cells if c.method == method and c.attack == "none" and c.track == track)
        model = res.model(cell)
        assert not model.training
        assert _test_accuracy(model) == pytest.approx(cell.metrics["test_acc"], abs=1e-6)
    # by key prefix and by position, the same weights
    first = res.cells[0]
    a, b = res.model(first.key[:12]), res.model(0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_model_of_an_attacked_cell_is_the_model_before_the_attack(api_run):
    _, _, res = api_run
    plain = next(c for c in res.cells if c.method == "finetune" and c.attack == "none" and c.track == "unlearning")
    noisy = next(c for c in res.cells if c.method == "finetune" and c.attack != "none" and c.track == "unlearning")
    assert noisy.model["key"] == plain.model["key"]


def test_model_without_its_cache_says_where_it_looked(api_run, tmp_path):
    _, tmp, _ = api_run
    res = dememo.load_results(tmp / "out", cache_dir=tmp_path / "empty")
    with pytest.raises(UserError, match=r"is not in the cache at .*empty; give the run's cache_dir"):
        res.model(0)
    with pytest.raises(UserError, match="cells have a key starting 'zz'"):
        res.model("zz")


def test_save_and_load_results_round_trip(api_run, tmp_path):
    _, tmp, res = api_run
    written = res.save(tmp_path / "copy")
    assert {p.name for p in written.iterdir()} >= {"results.json", "leaderboard.md", "leaderboard.csv"}
    again = dememo.load_results(written, cache_dir=tmp / "cache")
    assert again.data == res.data and again.suite == "tiny"
    assert torch.equal(next(iter(again.model(0).state_dict().values())), next(iter(res.model(0).state_dict().values())))
    with pytest.raises(UserError, match="no results at"):
        dememo.load_results(tmp_path / "nowhere")


def test_a_second_run_reads_every_stage_from_the_cache(api_run, capsys):
    suite, tmp, res = api_run
    again = dememo.run(str(suite), out=tmp / "again", cache_dir=tmp / "cache", **NARROW)
    assert "served without computing" in capsys.readouterr().err  # "all N cells served without computing"
    assert {c.key: c.metrics for c in again.cells} == {c.key: c.metrics for c in res.cells}


def test_plan_counts_the_cached_cells_and_estimates_nothing_left(api_run):
    suite, tmp, res = api_run
    plan = dememo.plan(str(suite), cache_dir=tmp / "cache", **NARROW)
    assert len(plan.cells) == len(res.cells) and plan.to_run == 0 and "all cached" in plan.line()
    wider = dememo.plan(str(suite), cache_dir=tmp / "cache", **{**NARROW, "unlearners": ["finetune", "gradient-ascent"]})
    left = [c for c in wider.cells if c.key not in wider.cached]
    assert left and {c.unlearner.name for c in left} == {"gradient-ascent"}
    assert wider.estimate.seconds > 0 and wider.estimate.stages.get("unlearn", 0) >= 1
    # the original and retrained models of the seed are cached: no training is left to estimate
    assert wider.estimate.stages.get("train", 0) == 0


def test_options_are_checked_with_the_command_line_messages():
    with pytest.raises(UserError, match="--seeds must be a whole number between 1 and"):
        RunOptions(seeds=0)
    with pytest.raises(UserError, match="executor must be one of local, ray"):
        RunOptions(executor="slurm")
    with pytest.raises(UserError, match="not PLUGIN.PARAM"):
        RunOptions(sets={"lr": 0.1})
    assert RunOptions(sets={"finetune.lr": 0.1, "recipe": {"epochs": 2}}).sets == {"finetune": {"lr": 0.1},
                                                                                  "recipe": {"epochs": 2}}
    assert RunOptions(sets=["finetune.lr=0.1"]).sets == {"finetune": {"lr": 0.1}}
    assert RunOptions(unlearners="scrub").unlearners == ("scrub",)
    with pytest.raises(UserError, match=r"unknown unlearner 'SCRUBB' \(did you mean 'scrub'\?\)"):
        dememo.plan("quick", unlearners="SCRUBB")


def test_the_api_is_reached_lazily_from_the_package():
    import subprocess
    import sys

    code = "import sys, dememo; assert 'dememo.api' not in sys.modules; dememo.run; assert 'dememo.api' in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_a_misspelt_option_is_a_user_error_with_the_closest_and_threads_are_left_alone():
    with pytest.raises(UserError, match=r"unknown option 'unlearner' \(did you mean 'unlearners'\?\)"):
        dememo.plan("quick", unlearner="scrub")
    with pytest.raises(UserError, match=r"unknown export option 'cache' \(did you mean 'cache_dir'\?\)"):
        dememo.export("x", dataset="digits", forget="class-0", cache="c")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        dememo.plan("quick", unlearners="scrub", seeds=1, threads=1)
        assert torch.get_num_threads() == 2  # the run's one thread was the run's
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("options, message", [
    (dict(jobs=True), "--jobs must be a whole number"), (dict(threads=0), "--threads must be at least 1, got 0"),
    (dict(progress="no"), "progress must be True, False or None"), (dict(cell_timeout=0), "--cell-timeout must be a positive"),
    (dict(cell_memory=-1), "--cell-memory must be a positive"), (dict(unlearners=5), "a filter is a name or a list"),
    (dict(sets=5), "sets is a mapping"), (dict(out=5), "a directory option takes a path"),
])
def test_bad_option_values_are_one_line(options, message):
    with pytest.raises(UserError, match=message):
        RunOptions(**options)


def test_results_refuse_what_they_do_not_hold(api_run, tmp_path):
    _, tmp, res = api_run
    with pytest.raises(UserError, match=r"no cell 999: these results hold \d+ cells"):
        res.model(999)
    with pytest.raises(UserError, match="unknown device 'gpu'"):
        res.model(0, device="gpu")
    (tmp_path / "unfinished" / "cells").mkdir(parents=True)
    with pytest.raises(UserError, match="never finished .* run the same command again"):
        dememo.load_results(tmp_path / "unfinished")
