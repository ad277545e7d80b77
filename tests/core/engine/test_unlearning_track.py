"""The unlearning track's harness: forget-set kinds, memorization scores, composed unlearners (RUM), the
tuning protocol and its record, and run time relative to retrain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import attrs
import pytest
import torch
from support import bench, load
from hypothesis import given, settings
from hypothesis import strategies as st

import dememo
from dememo.engine.cell import run_cell
from dememo import forget
from dememo.errors import ParameterError, UserError
from dememo.params import parse_label
from dememo.planning.suite import ForgetSpec
from dememo.engine import tuner as tuning
from dememo.testing import registered, tiny_context, tiny_splits, tiny_task

# -- forget sets -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n=st.integers(9, 400), fraction=st.floats(0.01, 1 / 3), seed=st.integers(0, 5),
       stratum=st.sampled_from(forget.STRATA), data=st.data())
def test_tertile_memorization_strata_have_the_asked_size_and_come_from_their_third(n, fraction, seed, stratum, data):
    """``selection = "tertile"`` (dememo's first rule, kept as an option; the published selection is in
    test_reference_memorization.py)."""
    scores = torch.tensor(data.draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n)))
    spec = ForgetSpec("memorization", fraction=fraction, stratum=stratum, selection="tertile").to_json()
    want = max(1, round(fraction * n))
    sizes = dict(zip(("low", "mid", "high"), (len(t) for t in forget.tertiles(scores, seed))))
    if stratum != "mix" and want > sizes[stratum]:  # rounding can ask for more than a third holds (n = 14)
        with pytest.raises(UserError, match="needs fraction ≤ 1/3"):
            forget.memorization_mask(scores, stratum, fraction, seed, spec, selection="tertile")
        return
    mask = forget.memorization_mask(scores, stratum, fraction, seed, spec, selection="tertile")
    assert int(mask.sum()) == max(1, round(fraction * n))
    assert torch.equal(mask, forget.memorization_mask(scores, stratum, fraction, seed, spec, selection="tertile"))  # deterministic
    low, mid, high = forget.tertiles(scores, seed)
    thirds = {"low": low, "mid": mid, "high": high}
    chosen = set(mask.nonzero().flatten().tolist())
    if stratum == "mix":
        counts = [len(chosen & set(t.tolist())) for t in (low, mid, high)]
        assert max(counts) - min(counts) <= 1
    else:
        assert chosen <= set(thirds[stratum].tolist())


def test_tertiles_are_ordered_by_score_and_partition_the_data():
    scores = torch.randn(300, generator=torch.Generator().manual_seed(0))
    low, mid, high = forget.tertiles(scores, seed=0)
    assert sorted(torch.cat([low, mid, high]).tolist()) == list(range(300))
    assert scores[low].max() <= scores[mid].min() and scores[mid].max() <= scores[high].min()


def test_forget_spec_labels_and_validation():
    assert ForgetSpec("memorization", stratum="mix").label() == "mem-mix-10%"
    assert ForgetSpec("random").to_json() == {"kind": "random", "fraction": 0.1}  # unchanged: old cache keys hold
    with pytest.raises(ValueError, match="≤ 1/3"):
        ForgetSpec("memorization", fraction=0.5, selection="tertile")
    with pytest.raises(UserError, match="stratum"):
        forget.memorization_mask(torch.zeros(10), "top", 0.1, 0, {})


def test_confidence_scores_rank_hard_samples_high():
    """The inverted C-proxy gives mislabelled samples (the most memorized kind) higher scores than clean ones."""
    splits = tiny_splits(n_train=150)
    flipped = torch.arange(0, 150, 10)
    y = splits.train.y.clone()
    y[flipped] = (y[flipped] + 1) % splits.num_classes
    data = dememo.Data.from_tensors(splits.train.x, y, splits.num_classes, tag="flipped")
    ctx = tiny_context(splits, budget=None)
    scores = dememo.plugins.get_registry().get("metric", "confidence")().score(data, ctx)
    clean = torch.ones(150, dtype=torch.bool)
    clean[flipped] = False
    assert scores.shape == (150,) and bool(((0 <= scores) & (scores <= 1)).all())
    assert scores[~clean].mean() > scores[clean].mean() + 0.3


# -- composing unlearners: RUM ---------------------------------------------------------------------


def test_parse_label():
    assert parse_label("neggrad-plus(alpha=0.97, epochs=2)") == ("neggrad-plus", {"alpha": 0.97, "epochs": 2})
    assert parse_label(" salun ") == ("salun", {})
    for bad in ("", "x(", "x(a)", "(a=1)"):
        with pytest.raises(ParameterError):
            parse_label(bad)


CALLS: list[tuple[str, int, tuple[int, ...]]] = []


@attrs.define
class Recorder(dememo.Unlearner):
    """Records which forget samples it is given (test helper)."""

    name: ClassVar[str] = "recorder"
    tag: str = "x"

    def unlearn(self, model, task, ctx):
        CALLS.append((self.tag, len(task.retain), tuple(sorted(task.forget.index.tolist()))))
        return model


class RecorderPlugin:
    @staticmethod
    @dememo.hookimpl
    def register_unlearners(register):
        register(Recorder)


def test_rum_unlearns_the_strata_in_order_low_mid_high_with_the_later_strata_retained():
    from dememo_plugins.unlearners.rum import RUM

    splits = tiny_splits()
    task = tiny_task(splits, forget_fraction=0.3)
    ctx = tiny_context(splits, budget=None)
    CALLS.clear()
    with registered(RecorderPlugin, "recorder-plugin"):
        rum = RUM(low="recorder(tag=low)", mid="recorder(tag=mid)", high="recorder(tag=high)")
        rum.unlearn(ctx.new_model(), task, ctx)
        parts = rum.strata(task, ctx)
    assert [c[0] for c in CALLS] == ["low", "mid", "high"]
    # each step's retain set is the task's plus the strata still to come (the released code's; see
    # test_reference_memorization.py)
    sizes = [len(parts[s]) for s in ("low", "mid", "high")]
    assert [c[1] for c in CALLS] == [len(task.retain) + sizes[1] + sizes[2], len(task.retain) + sizes[2], len(task.retain)]
    given = [set(c[2]) for c in CALLS]
    assert set().union(*given) == set(task.forget.index.tolist()) and sum(map(len, given)) == len(task.forget)
    scores = ctx.scores("confidence")
    means = [float(scores[task.forget.index[parts[s]]].mean()) for s in ("low", "mid", "high")]
    assert means[0] < means[1] < means[2]


def test_rum_rejects_bad_labels():
    from dememo_plugins.unlearners.rum import RUM

    with pytest.raises(ValueError, match="rum itself"):
        RUM(low="rum")
    with pytest.raises(ValueError, match="must name an unlearner"):
        RUM(mid="neggrad-plus(alpha)")


# -- tuning ----------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(space=st.dictionaries(st.sampled_from("abc"), st.lists(st.integers(0, 4), min_size=1, max_size=3, unique=True), min_size=1),
       trials=st.none() | st.integers(1, 6), salt=st.integers(0, 3))
def test_candidates_put_the_suite_values_first_and_respect_the_trial_limit(space, trials, salt):
    base = {k: 99 for k in space}
    out = tuning.candidates({k: tuple(v) for k, v in space.items()}, base, trials, salt)
    grid = 1
    for v in space.values():
        grid *= len(v)
    assert out[0] == base
    assert len(out) == (grid + 1 if trials is None else min(trials, grid + 1))
    assert len({json.dumps(c, sort_keys=True) for c in out}) == len(out)
    assert out == tuning.candidates({k: tuple(v) for k, v in space.items()}, base, trials, salt)


TUNE_SUITE = """
name = "tune-test"
seeds = 2
tracks = ["unlearning"]
[[datasets]]
name = "digits"
architecture = "mlp"
recipe = { epochs = 4, batch_size = 128, lr = 0.05 }
[[forget]]
kind = "random"
fraction = 0.1
[references]
unlearner = ["original", "retrain"]
attack = ["none"]
[columns]
unlearning = ["forget_acc", "avg_gap", "rte"]
"""


@pytest.mark.slow
def test_tune_writes_its_log_and_a_suite_applies_and_records_it(tmp_path: Path):
    (tmp_path / "s.toml").write_text(TUNE_SUITE)
    cache = tmp_path / "cache"
    r = bench("tune", "--suite", str(tmp_path / "s.toml"), "--unlearner", "gradient-ascent", "--trials", "3", "--seeds", "1",
              "--out", str(tmp_path / "tuned"), "--cache-dir", str(cache), "--quiet")
    assert r.returncode == 0, r.stderr
    log = json.loads((tmp_path / "tuned" / "tuning.json").read_text())
    (entry,) = log["entries"]
    assert log["seeds"] == [1000] and entry["unlearner"] == "gradient-ascent" and len(entry["trials"]) == 3
    assert entry["trials"][0]["params"] == entry["base"]  # the suite's own values are always a candidate
    assert entry["objective"] == min(t["objective"] for t in entry["trials"])
    assert {"forget_acc", "retain_acc", "val_acc", "mia_efficacy", "avg_gap"} <= set(entry["trials"][0]["per_seed"][0])

    text = TUNE_SUITE.replace('tracks = ["unlearning"]', 'tracks = ["unlearning"]\ntuning = "tuned/tuning.json"')
    (tmp_path / "applied.toml").write_text(text)
    out = tmp_path / "out"
    r = bench("--all", "--suite", str(tmp_path / "applied.toml"), "--unlearner", "gradient-ascent", "--attack", "none",
              "--metric", "unlearning-accuracy", "--metric", "run-time", "--out", str(out), "--cache-dir", str(cache), "--quiet")
    assert r.returncode == 0, r.stderr
    results = load(out)
    ga = [c for c in results["cells"] if c["unlearner"] == "gradient-ascent"]
    assert ga and all(c["selection"]["source"] == "tuned" for c in ga)
    assert all({k: c["params"]["unlearner"]["params"][k] for k in entry["chosen"]} == entry["chosen"] for c in ga)
    assert results["suite"]["tuned"]["entries"][0]["trials"] == entry["trials"]  # the search log travels with the results
    assert {c["selection"]["source"] for c in results["cells"] if c["unlearner"] == "retrain"} == {"default"}
    board = (out / "leaderboard.md").read_text()
    assert "| tuned" in board and "chosen by `dememo-bench tune`" in board
    # run time relative to retrain: retrain's unlearning stage is billed the whole retraining it reuses, so its
    # RTE is at least 1 exactly; the rest is the harness's own work (copies, guards), a wall-clock share that
    # on this 5-epoch recipe reached 0.15 on an idle machine, so only a loose upper bound; original about 0
    rte = {c["unlearner"]: c["metrics"]["rte"] for c in results["cells"] if c["seed"] == 0}
    assert 1.0 <= rte["retrain"] < 1.5 and rte["original"] < 0.2

    # a hand-set value wins over the tuned one and says so
    r = bench("--all", "--suite", str(tmp_path / "applied.toml"), "--unlearner", "gradient-ascent", "--attack", "none",
              "--metric", "unlearning-accuracy", "--set", "gradient-ascent.lr=0.002", "--out", str(tmp_path / "o2"),
              "--cache-dir", str(cache), "--quiet")
    assert r.returncode == 0, r.stderr
    ga = [c for c in load(tmp_path / "o2")["cells"] if c["unlearner"].startswith("gradient-ascent")]
    assert all(c["selection"] == {"source": "set", "params": ["lr"]} for c in ga)


def test_tuning_never_reads_the_test_split(tmp_path: Path):
    """The same search with the test split replaced by noise gives the identical log."""
    from dememo import plugins
    from dememo.planning.planner import Planner
    from dememo.planning.suite import load_suite
    from dememo.engine.cache import Store
    from dememo.engine.runner import Runner

    (tmp_path / "s.toml").write_text(TUNE_SUITE)
    suite = load_suite(str(tmp_path / "s.toml"))
    logs = []
    for garbage in (False, True):
        planner = Planner(plugins.get_registry(), suite)
        runner = Runner(Store(tmp_path / f"cache{garbage}"), torch.device("cpu"), planner=planner)
        env = runner.env(planner.dataset_config(suite.datasets[0]))
        if garbage:
            t = env.splits.test
            noise = dememo.Data(x=torch.rand_like(t.x), y=torch.zeros_like(t.y), num_classes=t.num_classes,
                                fingerprint=t.fingerprint, index=t.index)
            env.splits = dememo.Splits(env.splits.train, env.splits.val, noise)
        log = tuning.Tuner(planner, runner, seeds=1, trials=2).run(["neggrad-plus"])
        logs.append([[s for s in t["per_seed"]] for e in log["entries"] for t in e["trials"]])
    assert logs[0] == logs[1]


def test_tune_needs_a_search_space(tmp_path: Path):
    (tmp_path / "s.toml").write_text(TUNE_SUITE)
    r = bench("tune", "--suite", str(tmp_path / "s.toml"), "--unlearner", "retrain", "--out", str(tmp_path / "t"),
              "--cache-dir", str(tmp_path / "c"), "--quiet")
    assert r.returncode == 2 and "search_space" in r.stderr and "Traceback" not in r.stderr


def test_a_missing_tuning_file_is_a_clear_error(tmp_path: Path):
    (tmp_path / "s.toml").write_text(TUNE_SUITE.replace("seeds = 2", 'seeds = 2\ntuning = "nope.json"'))
    r = bench("--all", "--suite", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 2 and "dememo-bench tune" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_rum_with_memorization_strata_is_not_worse_than_its_base_unlearner_on_the_mix_forget_set():
    """RUM^F with NegGrad+ vs NegGrad+ alone on mem-mix-10 % (seeds 0–2, avg gap to retrain on the test split).
    Measured with RUM version 2 on the published mix (issue 17): digits 0.0790 vs 0.0764, noisy-shapes
    0.0415 vs 0.0401 (version 1 on the old tertile mix: 0.030 vs 0.030, 0.048 vs 0.050); differences this
    small are within seed noise, so "not worse" allows 0.003 — the digits margin is now only 0.0004."""
    import statistics

    from support.unlearning import measure

    from dememo_plugins.unlearners.neggrad_plus import NegGradPlus
    from dememo_plugins.unlearners.rum import RUM

    for dataset in ("digits", "noisy-shapes"):
        gaps = {name: statistics.fmean(measure(u, dataset, seed, kind="memorization")["avg_gap"] for seed in range(3))
                for name, u in (("rum", RUM()), ("base", NegGradPlus()))}
        assert gaps["rum"] <= gaps["base"] + 0.003, (dataset, gaps)


# -- what the issue asks of the track --------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["digits", "noisy-shapes"])
def test_retrain_forget_accuracy_is_about_its_test_accuracy(dataset):
    """Exact unlearning is not zero forget accuracy: the retrained model classifies the forget set like
    unseen data (measured seed 0: digits 0.944 vs 0.968, noisy-shapes 0.893 vs 0.925)."""
    from support.unlearning import retrained_scores

    ref = retrained_scores(dataset, 0, "random")
    assert abs(ref["forget_acc"] - ref["test_acc"]) < 0.06


@attrs.define
class Spy(dememo.Unlearner):
    """Asserts it never sees the forget set (test helper)."""

    name: ClassVar[str] = "spy"
    reads_forget: ClassVar[bool] = False

    def unlearn(self, model, task, ctx):
        CALLS.append(("spy", len(task.retain), tuple(task.forget.index.tolist())))
        return model


class SpyPlugin:
    @staticmethod
    @dememo.hookimpl
    def register_unlearners(register):
        register(Spy)


def test_methods_that_must_not_read_the_forget_set_get_an_empty_one_from_the_harness(tmp_path: Path):
    from dememo import plugins
    from dememo.planning.planner import Filters, Planner
    from dememo.planning.suite import load_suite
    from dememo.engine.cache import Store
    from dememo.engine.runner import Runner

    for name in ("finetune", "eu-k", "cf-k", "l1-sparse", "retrain"):
        assert plugins.get_registry().get("unlearner", name).reads_forget is False
    (tmp_path / "s.toml").write_text(TUNE_SUITE.replace("seeds = 2", "seeds = 1"))
    CALLS.clear()
    with registered(SpyPlugin, "spy-plugin"):
        planner = Planner(plugins.get_registry(), load_suite(str(tmp_path / "s.toml")))
        cells = planner.cells(Filters(unlearner=("spy",), attack=("none",), metric=("unlearning-accuracy",)))
        runner = Runner(Store(tmp_path / "cache"), torch.device("cpu"), planner=planner)
        records = [run_cell(runner, c) for c in cells if c.unlearner.name == "spy"]
    assert records and all(r.status == "ok" and r.forget_size > 0 for r in records)
    assert CALLS and all(c[0] == "spy" and c[2] == () for c in CALLS)


def _tuned(dataset: str, forget_label: str, name: str):
    from dememo import plugins
    from dememo.planning.planner import Planner
    from dememo.planning.suite import load_suite

    suite = load_suite("quick")
    entry = tuning.chosen(suite.tuned, dataset, forget_label, name)
    assert entry is not None, f"quick.tuning.json has no {dataset}/{forget_label}/{name} entry"
    return Planner(plugins.get_registry(), suite).single("unlearner", name, entry["chosen"], suite.dataset(dataset)).obj


@pytest.mark.slow
@pytest.mark.parametrize("dataset, better", [("noisy-shapes", ("neggrad-plus", "rurk")), ("digits", ("salun",))])
def test_after_tuning_these_unlearners_get_closer_to_retrain_than_finetune_and_gradient_ascent(dataset, better):
    """The issue's direction, with the shipped tuned parameters, class-0 forgetting, seeds 0–1 (test split).
    Measured avg gap (mean of 2 seeds): noisy-shapes FT 0.022, GA 0.365, NegGrad+ 0.012, RURK 0.010;
    digits FT 0.517, GA 0.203, SalUn 0.002. What does not reproduce on the embedded data (README, issue note):
    SCRUB (its tuned setting collapses digits on class 0), SalUn on noisy-shapes (0.024, level with FT), and
    every method on random 10 % forgetting, where the original model is already within 3-5 points of retrain."""
    import statistics

    from support.unlearning import measure

    gaps = {name: statistics.fmean(measure(_tuned(dataset, "class-0", name), dataset, seed, kind="class")["avg_gap"]
                                   for seed in (0, 1))
            for name in ("finetune", "gradient-ascent", *better)}
    baseline = min(gaps["finetune"], gaps["gradient-ascent"])
    assert all(gaps[name] < baseline for name in better), gaps
