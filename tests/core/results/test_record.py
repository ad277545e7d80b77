"""CellRecord, the typed record of one cell: it reads every cell dememo writes and writes it back unchanged,
keeps what it does not know, and is what the runner returns."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dememo.engine.cell import run_cell
from dememo import results
from dememo.results.record import UNSET, CellError, CellRecord

from support import ROOT

BOARD = ROOT / "leaderboard" / "results.json"

text = st.text(min_size=1, max_size=8)
number = st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False, width=32))
optional = {
    "architecture": st.one_of(st.none(), text), "poisoner": st.one_of(st.none(), text),
    "train_attack": st.one_of(st.none(), text), "unlearner": st.one_of(st.none(), text),
    "forget": st.one_of(st.none(), text), "selection": st.one_of(st.none(), st.fixed_dictionaries({"source": text})),
    "params": st.one_of(st.none(), st.just({"data": {"budgets": {}}})),
    "error": st.one_of(st.none(), st.fixed_dictionaries({"stage": text, "message": text, "traceback": st.text()})),
    "timings": st.dictionaries(text, st.fixed_dictionaries({"seconds": st.floats(0, 10), "cached": st.booleans()})),
    "series": st.dictionaries(text, st.fixed_dictionaries({"x": st.lists(st.floats(0, 1)), "y": st.lists(number)})),
    "budget": number, "poison_subset": st.one_of(st.none(), st.fixed_dictionaries({"ratio": st.floats(0, 1)})),
    "interplay_target": st.sampled_from(["share", "clean"]), "forget_size": st.integers(0, 10**6),
    "draws": st.integers(2, 20), "unlearn_record": st.one_of(st.none(), st.fixed_dictionaries({"eps": st.floats(0, 9)})),
    "entry": text,  # a key CellRecord does not know (the board adds it)
}


@st.composite
def cells(draw):
    cell = {"track": draw(st.sampled_from(["unlearnability", "unlearning", "interplay"])), "dataset": draw(text),
            "method": draw(text), "attack": draw(text), "seed": draw(st.integers(0, 9999)), "key": draw(text),
            "status": draw(st.sampled_from(["ok", "failed", "skipped"])),
            "metrics": draw(st.dictionaries(text, number))}
    for name in draw(st.sets(st.sampled_from(sorted(optional)))):
        cell[name] = draw(optional[name])
    return cell


@given(cells())
def test_a_cell_survives_the_round_trip(cell):
    assert results.shape_problem({"suite": {"name": "s"}, "environment": {"wall_seconds": 1}, "cells": [cell]}) is None
    record = CellRecord.from_json(cell)
    out = record.to_json()
    labels = {"architecture", "poisoner", "train_attack", "unlearner", "forget", "selection", "params", "error"}
    assert out == {**{k: None for k in labels}, **cell}  # labels a hand-made cell leaves out read as None
    assert CellRecord.from_json(out) == record


def test_every_cell_of_the_published_board_reads_and_writes_back_unchanged():
    data = json.loads(BOARD.read_text(encoding="utf-8"))
    assert len(data["cells"]) > 1000
    for cell in data["cells"]:
        assert CellRecord.from_json(cell).to_json() == cell


def test_optional_facts_are_unset_until_recorded_and_left_out_of_the_json():
    r = CellRecord("unlearning", "digits", "finetune", "none", 0, "k")
    assert r.series is UNSET and not r.series and r.forget_size is UNSET
    assert "series" not in r.to_json() and "forget_size" not in r.to_json()
    r.budget = None  # present as null: a poisoned cell on a dataset without that norm's budget
    assert r.to_json()["budget"] is None


def test_fail_records_the_stage_and_message():
    r = CellRecord("unlearning", "digits", "finetune", "none", 0, "k")
    r.fail("metric:x", "metric 'x' raised ValueError: boom")
    assert not r.ok and r.error == CellError("metric:x", "metric 'x' raised ValueError: boom", "")
    assert r.to_json()["error"] == {"stage": "metric:x", "message": "metric 'x' raised ValueError: boom", "traceback": ""}


def test_the_runner_returns_a_record_that_is_written_as_json(tmp_path, tiny_suite):
    import torch

    from dememo import plugins
    from dememo.planning.planner import Filters, Planner
    from dememo.planning.suite import load_suite
    from dememo.engine.cache import Store
    from dememo.engine.runner import Runner

    planner = Planner(plugins.get_registry(), load_suite(str(tiny_suite)), {})
    cell = next(c for c in planner.cells(Filters((), ("finetune",), ("none",), ("unlearning-accuracy",)))
                if c.track == "unlearning")
    record = run_cell(Runner(Store(tmp_path / "cache"), torch.device("cpu"), planner=planner), cell)
    assert isinstance(record, CellRecord) and record.ok and record.key == cell.key
    assert record.forget_size > 0 and set(record.timings) >= {"train", "unlearn", "metrics"}
    results.write_cell(tmp_path / "out", record)
    written = json.loads((tmp_path / "out" / "cells" / f"{cell.key}.json").read_text())
    assert CellRecord.from_json(written) == record
    with pytest.raises(TypeError):
        record["status"]  # noqa: B018 - a record is read by attribute, not by key
