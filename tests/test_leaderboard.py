"""The leaderboard says mean ± std in percent, marks the best non-reference row by each column's direction,
shows failures with their reason, and its CSV carries the exact means."""

from __future__ import annotations

import copy
import csv
import io
import statistics

import pytest

from dememo.board.leaderboard import render, to_csv

WN = "weight-noise(sigma=0.03)"

COLUMNS = {
    "unlearnability": {
        "test_acc": {"label": "test acc", "direction": "lower", "unit": "fraction", "reference": None},
        "train_acc": {"label": "train acc", "direction": "info", "unit": "fraction", "reference": None},
        "peak_epoch": {"label": "peak epoch", "direction": "info", "unit": "epochs", "reference": None},
    },
    "unlearning": {
        "forget_acc": {"label": "forget acc", "direction": "match", "unit": "fraction", "reference": "retrain"},
        "test_acc": {"label": "test acc", "direction": "higher", "unit": "fraction", "reference": None},
        "runtime": {"label": "runtime", "direction": "lower", "unit": "seconds", "reference": None},
    },
}

# (method, attack) -> per-seed metric values (two seeds)
UNLEARNABILITY = {
    ("none", "none"): {"test_acc": [0.10, 0.10], "train_acc": [1.0, 1.0], "peak_epoch": [3, 5]},  # a reference
    ("em", "none"): {"test_acc": [0.20, 0.30], "train_acc": [0.99, 0.97], "peak_epoch": [1, 1]},
    ("random-noise(mode=class)", "none"): {"test_acc": [0.60, 0.60], "train_acc": [0.9, 0.9], "peak_epoch": [2, 2]},
    ("none", WN): {"test_acc": [0.5, 0.5]},
    ("em", WN): {"test_acc": [0.7, 0.8]},
    ("random-noise(mode=class)", WN): {"test_acc": [0.4, 0.4]},
}
UNLEARNING = {
    ("original", "none"): {"forget_acc": [0.99, 0.99], "test_acc": [0.97, 0.97], "runtime": [0.0, 0.0]},
    ("retrain", "none"): {"forget_acc": [0.80, 0.80], "test_acc": [0.96, 0.96], "runtime": [9.0, 9.0]},
    ("finetune", "none"): {"forget_acc": [0.95, 0.95], "test_acc": [0.93, 0.93], "runtime": [1.5, 1.5]},
    ("gradient-ascent", "none"): {"forget_acc": [0.78, 0.78], "test_acc": [0.85, 0.87], "runtime": [3.0, 3.0]},
}


def cells_for(track, table, forget):
    out = []
    for (method, attack), metrics in table.items():
        for seed in (0, 1):
            out.append({
                "track": track, "dataset": "digits", "architecture": "mlp", "forget": forget,
                "method": method, "attack": attack, "seed": seed, "key": f"{track}-{method}-{attack}-{seed}",
                "status": "ok", "error": None,
                "params": {"data": {"budgets": {"linf": 8 / 255}}},
                "metrics": {k: v[seed] for k, v in metrics.items()},
            })
    return out


def results(extra_cells=()):
    return {
        "schema": "dememo.results/1",
        "suite": {
            "name": "synthetic",
            "references": {"poisoner": ["none"], "unlearner": ["original", "retrain"], "attack": ["none"]},
            "headline": {"unlearnability": ["test_acc"], "unlearning": ["forget_acc"]},
            "columns": {"unlearning": ["forget_acc", "test_acc", "runtime"]},
        },
        "columns": copy.deepcopy(COLUMNS),
        "cells": cells_for("unlearnability", UNLEARNABILITY, None) + cells_for("unlearning", UNLEARNING, "random-10%")
        + list(extra_cells),
    }


FAILED = [
    {"track": "unlearning", "dataset": "digits", "architecture": "mlp", "forget": "random-10%",
     "method": "neggrad-plus", "attack": "none", "seed": s, "key": f"failed-{s}", "status": "failed", "params": {},
     "metrics": {},
     "error": {"stage": "unlearn", "message": "loss became NaN at step 3", "traceback": "Traceback ...\nboom"}}
    for s in (0, 1)
]


def tables(text: str) -> list[dict[str, dict[str, str]]]:
    """Parse Markdown tables: a list of {row label: {header: cell}}."""
    out, current, header = [], None, None
    for line in text.splitlines():
        if not line.startswith("|"):
            current = header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header, current = cells, {}
            out.append(current)
        elif not set(line) <= set("|-: "):
            current[cells[0]] = dict(zip(header, cells))
    return out


@pytest.fixture(scope="module")
def md() -> str:
    return render(results(), fmt="github")


@pytest.fixture(scope="module")
def parsed(md):
    return tables(md)


def main_table(parsed, first_column):
    return next(t for t in parsed if first_column in next(iter(t.values())))


def test_render_shows_mean_and_std_in_percent(parsed):
    t = main_table(parsed, "test acc ↓")
    assert t["em"]["test acc ↓"].startswith("25.0 ± 7.1")  # mean 0.25, stdev 0.0707 over two seeds
    assert t["random-noise(mode=class)"]["test acc ↓"] == "60.0"  # no ± when the seeds agree
    assert t["em"]["seeds"] == "2"
    assert t["none"]["peak epoch"] == "4.0 ± 1.4"  # epochs are not percentages


def test_render_marks_the_lowest_non_reference_row_for_lower_is_better(parsed):
    t = main_table(parsed, "test acc ↓")
    assert t["em"]["test acc ↓"] == "25.0 ± 7.1*"
    assert t["none"]["test acc ↓"] == "10.0"  # the reference has the lowest value but is never marked
    assert not t["random-noise(mode=class)"]["test acc ↓"].endswith("*")


def test_render_never_marks_info_columns(parsed):
    t = main_table(parsed, "test acc ↓")
    assert not any(row["train acc"].endswith("*") for row in t.values())


def test_render_marks_the_highest_non_reference_row_for_higher_is_better(parsed):
    t = main_table(parsed, "forget acc ≈")
    assert t["finetune"]["test acc ↑"] == "93.0*"
    assert t["original"]["test acc ↑"] == "97.0" and t["retrain"]["test acc ↑"] == "96.0"
    assert t["finetune"]["runtime ↓"] == "1.50*"  # seconds, two digits, lower is better
    assert t["original"]["runtime ↓"] == "0.00"  # the fastest is a reference: not marked


def test_render_marks_the_row_closest_to_the_reference_for_match(parsed):
    t = main_table(parsed, "forget acc ≈")
    assert t["gradient-ascent"]["forget acc ≈"] == "78.0*"  # |0.78 − 0.80| beats |0.95 − 0.80|
    assert t["retrain"]["forget acc ≈"] == "80.0"  # the reference itself is never marked
    assert t["finetune"]["forget acc ≈"] == "95.0"


def test_render_lists_reference_rows_first(parsed):
    assert list(main_table(parsed, "forget acc ≈")) == ["original", "retrain", "finetune", "gradient-ascent"]
    assert list(main_table(parsed, "test acc ↓"))[0] == "none"


def test_render_adds_a_headline_table_per_model_stage_attack(md, parsed):
    assert "test acc ↓ under model-stage attacks" in md
    t = next(t for t in parsed if WN in next(iter(t.values())))
    assert t["em"][WN] == "75.0 ± 7.1"
    assert t["random-noise(mode=class)"][WN] == "40.0*"
    assert t["none"][WN] == "50.0" and t["em"]["none"] == "25.0 ± 7.1*"


def test_render_titles_name_track_dataset_budget_and_forget_set(md):
    assert "Unlearnability — digits / mlp (budget linf 0.03137 (8/255))" in md
    assert "Unlearning — digits / mlp, forget set random-10%" in md
    assert "* marks the best non-reference row" in md


def test_terminal_format_holds_the_same_numbers(md):
    text = render(results())
    assert "== Unlearnability — digits / mlp" in text
    for needle in ("25.0 ± 7.1*", "78.0*", "93.0*", "1.50*"):
        assert needle in text and needle in md


def test_render_shows_missing_values_as_na():
    r = results()
    for c in r["cells"]:
        if c["method"] == "finetune":
            c["metrics"]["test_acc"] = None  # NaN in results.json is written as null
    t = main_table(tables(render(r, fmt="github")), "forget acc ≈")
    assert t["finetune"]["test acc ↑"] == "n/a"
    assert t["gradient-ascent"]["test acc ↑"] == "86.0 ± 1.4*"


def test_render_of_no_cells_is_empty():
    r = results()
    r["cells"] = []
    assert render(r) == ""


def test_render_shows_failed_cells_with_their_one_line_reason():
    md = render(results(FAILED), fmt="github")
    t = main_table(tables(md), "forget acc ≈")
    assert t["neggrad-plus"]["forget acc ≈"] == "FAILED"
    assert t["neggrad-plus"]["test acc ↑"] == "FAILED"
    # Markdown: the reason is results text, escaped (``md_escape``): GitHub shows "[unlearn]"
    assert "FAILED neggrad-plus @none (2 cells): \\[unlearn\\] loss became NaN at step 3" in md
    assert "Traceback" not in md
    assert t["gradient-ascent"]["forget acc ≈"] == "78.0*"  # the failure changes no other row


# -- CSV -------------------------------------------------------------------------------------------


def csv_rows(r) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(to_csv(r))))


def test_csv_round_trips_the_exact_means_and_stds():
    rows = csv_rows(results())
    expected = {}
    for track, table in (("unlearnability", UNLEARNABILITY), ("unlearning", UNLEARNING)):
        for (method, attack), metrics in table.items():
            for col, vals in metrics.items():
                expected[(track, method, attack, col)] = vals
    got = {(r["track"], r["method"], r["attack"], r["column"]): r for r in rows}
    assert set(got) == set(expected)
    for key, vals in expected.items():
        row = got[key]
        assert float(row["mean"]) == statistics.fmean(vals)
        assert float(row["std"]) == statistics.stdev(vals)
        assert int(row["n"]) == 2 and row["failed_cells"] == "0"
        assert row["direction"] == COLUMNS[key[0]][key[3]]["direction"]
        assert row["dataset"] == "digits"
        assert row["forget"] == ("random-10%" if key[0] == "unlearning" else "")


def test_csv_counts_failed_cells():
    rows = csv_rows(results(FAILED))
    [row] = [r for r in rows if r["method"] == "neggrad-plus"]
    assert row["failed_cells"] == "2" and row["n"] == "0" and row["mean"] == "" and row["column"] == ""


def test_csv_leaves_missing_means_empty():
    r = results()
    for c in r["cells"]:
        if c["method"] == "finetune":
            c["metrics"]["test_acc"] = None
    [row] = [x for x in csv_rows(r) if x["method"] == "finetune" and x["column"] == "test_acc"]
    assert row["mean"] == "" and row["std"] == "" and row["n"] == "0"


def test_rows_never_attacked_stay_out_of_the_under_attack_table():
    """A learner-side row that the suite's grid does not attack has only its main-table numbers; it is not
    repeated as a line of n/a under every model-stage attack."""
    learner = cells_for("unlearnability", {("em + jpeg", "none"): {"test_acc": [0.5, 0.5]}}, None)
    parsed = tables(render(results(learner), fmt="github"))
    main = main_table(parsed, "train acc")
    under = next(t for t in parsed if WN in next(iter(t.values())))
    assert "em + jpeg" in main and "em + jpeg" not in under
    assert {"none", "em", "random-noise(mode=class)"} <= set(under)


def test_count_columns_render_as_integers():
    from dememo.board.leaderboard import _fmt

    assert _fmt(512.0, 0.0, "count") == "512"
