"""A plugin that misbehaves fails only its own cells, named, and cannot change another plugin's numbers.

Each case of ``qa.misbehaving.CASES`` runs a narrow slice of the tiny suite with one
misbehaving plugin registered; every other number must equal a run of the slice on a fresh cache without
it (wall-clock columns aside), and, since the damage could have been cached, a second run on the same cache
without the plugin must equal it too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from qa.misbehaving import (CASES, FIELD, StateChanger, dataset_failure, differences, is_own, misbehaviour, numbers,
                            plugin_of)

from dememo.engine.cell import CellRun, run_cell
from dememo import cli
from dememo.planning.planner import Filters
from dememo.engine.cache import Store
from dememo.engine.runner import Runner
from dememo.testing import registered

SLICE = ["--poisoner", "none", "--unlearner", "finetune", "--unlearner", "original", "--attack", "none",
         "--metric", "clean-accuracy", "--metric", "unlearning-accuracy"]


def bench(suite: Path, out: Path, cache: Path, *extra: str) -> tuple[int, dict]:
    code = cli.main(["--all", "--suite", str(suite), "--out", str(out), "--cache-dir", str(cache), "--quiet", *SLICE,
                     *extra])
    return code, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The slice with no misbehaving plugin, on its own cache."""
    from support import TINY_SUITE

    tmp = tmp_path_factory.mktemp("reference")
    suite = tmp / "tiny.toml"
    suite.write_text(TINY_SUITE)
    code, results = bench(suite, tmp / "out", tmp / "cache")
    assert code == 0
    return results


@pytest.mark.parametrize("family, cls, option, says", CASES, ids=[c[1].name for c in CASES])
def test_a_misbehaving_plugin_fails_only_its_own_cells_named_and_changes_no_other_number(family, cls, option, says,
                                                                                         reference, tiny_suite, tmp_path):
    with registered(plugin_of(family, cls), name=cls.name):
        code, got = bench(tiny_suite, tmp_path / "out", tmp_path / "cache", option, cls.name)
    own = [c for c in got["cells"] if is_own(c, family, cls)]
    others = [c for c in got["cells"] if not is_own(c, family, cls)]
    assert own, "the misbehaving plugin ran"
    if says is None:  # damage the harness undoes: the plugin's cells are fine
        assert code == 0 and all(c["status"] == "ok" for c in own)
    else:
        assert code == 1, "the run finishes (exit 1: some cells failed), neither silently nor as an interrupt"
        assert all(c["status"] == "failed" and says in c["error"]["message"] and "\n" not in c["error"]["message"]
                   for c in own), [c["error"] for c in own]
    assert all(c["status"] == "ok" for c in others)
    if family == "metrics":  # every cell has the metric: the cells' other metrics are still computed
        assert all(c["metrics"] for c in own)
    assert differences(got, reference) == [], "another number changed"
    # nothing wrong was cached: a clean run on the same cache serves the reference's numbers, all of them
    code, again = bench(tiny_suite, tmp_path / "again", tmp_path / "cache")
    assert code == 0 and numbers(again) == numbers(reference)


def test_the_scenario_counts_every_case_handled_and_nothing_lost(reference, tiny_suite, tmp_path):
    from support import TINY_SUITE

    tally = misbehaviour(str(tiny_suite), tmp_path, reference, SLICE, [c for c in CASES if c[1].__name__ in ("ModelScribbler", "ReferenceScaler", "Exiter", "QuietExiter")])
    assert tally.tried > 8 and tally.handled == tally.tried and tally.lost == tally.wrong == 0, tally.notes
    tally = dataset_failure(TINY_SUITE, tmp_path, reference, SLICE)
    assert tally.tried >= 4 and tally.handled == tally.tried and tally.lost == tally.wrong == 0, tally.notes


def test_a_dataset_that_cannot_load_fails_its_own_cells_and_the_others_run(reference, tmp_path, capsys):
    from support import TINY_SUITE
    from qa.misbehaving import MissingData, with_missing_dataset

    suite = tmp_path / "two.toml"
    suite.write_text(with_missing_dataset(TINY_SUITE))
    with registered(plugin_of("datasets", MissingData), name="missing-data"):
        code, got = bench(suite, tmp_path / "out", tmp_path / "cache")
    assert code == 1
    broken = [c for c in got["cells"] if c["dataset"] == "missing-data"]
    assert broken and all(c["status"] == "failed" and c["error"]["stage"] == "dataset" for c in broken)
    assert all("dataset plugin 'missing-data'" in c["error"]["message"] and "pass --download" in c["error"]["message"]
               for c in broken)
    digits = [c for c in got["cells"] if c["dataset"] == "digits"]
    assert digits and all(c["status"] == "ok" for c in digits) and differences(got, reference) == []
    assert f"its {len(broken)} cells fail, the other datasets run" in capsys.readouterr().err


def test_global_torch_state_a_plugin_changes_is_restored_and_the_plugin_named(tiny_suite, tmp_path, caplog):
    before = (torch.get_default_dtype(), torch.is_grad_enabled(), torch.are_deterministic_algorithms_enabled())
    with caplog.at_level(logging.WARNING, logger="dememo"), registered(plugin_of("unlearners", StateChanger), name="s"):
        code, _ = bench(tiny_suite, tmp_path / "out", tmp_path / "cache", "--unlearner", StateChanger.name)
    assert code == 0
    assert (torch.get_default_dtype(), torch.is_grad_enabled(), torch.are_deterministic_algorithms_enabled()) == before
    named = [r.getMessage() for r in caplog.records if "unlearner 'aaa-state-changer' changed the process-wide" in r.getMessage()]
    assert {m.split("changed the process-wide ")[1].split(" (")[0] for m in named} == \
        {"default dtype", "grad mode", "deterministic algorithms"}, "each setting named once, the RNG silently"


def test_a_plugin_that_changes_its_own_parameters_is_put_back(tiny_suite, tmp_path):
    from qa.misbehaving import SelfTuner

    with registered(plugin_of("unlearners", SelfTuner), name="self-tuner"):
        bench(tiny_suite, tmp_path / "out", tmp_path / "cache", "--unlearner", "self-tuner")
        from dememo import plugins
        from dememo.planning.planner import Planner
        from dememo.planning.suite import load_suite

        planner = Planner(plugins.get_registry(), load_suite(str(tiny_suite)), {})
        runner = Runner(Store(tmp_path / "cache"), torch.device("cpu"), planner=planner)
        cell = next(c for c in planner.cells(Filters((), ("self-tuner",), ("none",), ("unlearning-accuracy",)))
                    if c.unlearner is not None and c.unlearner.name == "self-tuner")
        record = run_cell(runner, cell)
        assert record.status == "failed" and "changed its own parameters" in record.error.message
        assert cell.unlearner.obj.lr == 0.01, "the shared object is restored"
        assert run_cell(runner, cell).error.message == record.error.message


# -- a plan too large to start unannounced ---------------------------------------------------------------


def test_a_very_large_plan_needs_yes(tiny_suite, tmp_path, capsys, monkeypatch):
    from dememo.engine import session

    monkeypatch.setattr(session, "LARGE_PLAN", 3)
    code = cli.main(["--all", "--suite", str(tiny_suite), "--out", str(tmp_path / "out"), "--cache-dir",
                     str(tmp_path / "cache"), "--quiet", *SLICE])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out").exists()
    assert "this plan has 4 cells" in err and "over the 3 that run without asking; pass --yes" in err and len(err.strip().splitlines()) == 1
    code = cli.main(["--all", "--suite", str(tiny_suite), "--out", str(tmp_path / "out"), "--cache-dir",
                     str(tmp_path / "cache"), "--quiet", "--yes", *SLICE])
    assert code == 0


def test_when_no_planned_dataset_can_load_the_run_stops_with_one_line_naming_the_plugin(tmp_path, capsys):
    from support import TINY_SUITE
    from qa.misbehaving import MissingData

    suite = tmp_path / "only-missing.toml"
    suite.write_text(TINY_SUITE.replace('name = "digits"', 'name = "missing-data"', 1))
    with registered(plugin_of("datasets", MissingData), name="missing-data"):
        code = cli.main(["--all", "--suite", str(suite), "--out", str(tmp_path / "out"), "--cache-dir",
                         str(tmp_path / "cache"), "--quiet", *SLICE])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not (tmp_path / "out" / "results.json").exists()
    assert err == ["dememo-bench: error: dataset 'missing-data' (dataset plugin 'missing-data') failed to load: "
                   "missing-data: files not found; pass --download"]


def test_relative_output_paths_survive_a_plugin_that_changes_the_working_directory(tiny_suite, tmp_path, monkeypatch):
    from qa.misbehaving import ProcessChanger

    monkeypatch.chdir(tmp_path)
    with registered(plugin_of("metrics", ProcessChanger), name="process-changer"):
        code = cli.main(["--all", "--suite", str(tiny_suite), "--out", "out", "--cache-dir", "cache", "--quiet", *SLICE,
                         "--metric", ProcessChanger.name])
    assert code == 0 and Path.cwd() == tmp_path
    assert (tmp_path / "out" / "results.json").exists() and any((tmp_path / "cache").iterdir())


def test_an_internal_error_escaping_the_cells_keeps_the_finished_ones_as_partial_results(tiny_suite, tmp_path,
                                                                                        monkeypatch, capsys):
    calls = []
    real = CellRun.run

    def flaky(self):
        if self.runner.memo.probing:  # the pass that serves cached cells first computes nothing
            return real(self)
        calls.append(self.cell.key)
        if len(calls) == 3:
            raise RuntimeError("a harness bug")
        return real(self)

    monkeypatch.setattr(CellRun, "run", flaky)
    with pytest.raises(RuntimeError, match="a harness bug"):
        cli.main(["--all", "--suite", str(tiny_suite), "--out", str(tmp_path / "out"), "--cache-dir",
                  str(tmp_path / "cache"), "--quiet", *SLICE])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["cells"]) == 2 and results["partial"] == {"cells_done": 2, "cells_planned": 4}
    assert "an internal error stopped the run after 2 of 4 cells" in capsys.readouterr().err
