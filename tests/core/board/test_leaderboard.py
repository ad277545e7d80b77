"""The leaderboard says mean ± std in percent, marks the best non-reference row by each column's direction,
shows failures with their reason, and its CSV carries the exact means."""

from __future__ import annotations

import csv
import io
import statistics

import pytest

from dememo.board.leaderboard import render, to_csv
from support.board import COLUMNS, FAILED, UNLEARNABILITY, UNLEARNING, WN, cells_for, main_table, results, tables

@pytest.fixture(scope="module")
def md() -> str:
    return render(results(), fmt="github")


@pytest.fixture(scope="module")
def parsed(md):
    return tables(md)


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
    assert t["finetune"]["runtime (s) ↓"] == "1.50*"  # seconds (named in the header), two digits, lower is better
    assert t["original"]["runtime (s) ↓"] == "0.00"  # the fastest is a reference: not marked


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
    # the only non-reference row with a value competes with nothing: not marked best
    assert t["gradient-ascent"]["test acc ↑"] == "86.0 ± 1.4"


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


@pytest.mark.parametrize("width", [50, 60, 80])
def test_terminal_output_fits_the_width_in_parts_that_repeat_the_row_labels(width):
    text = render(results(), "simple", width=width)
    lines = text.splitlines()
    for i, line in enumerate(lines):  # only a part of the row labels and a single column may be wider
        if len(line) > width:
            head = next(ln for ln in reversed(lines[: i + 1]) if ln.startswith("method "))
            assert len(head.split("  ")) - head.split("  ").count("") <= 5, head  # method, params, rank, one, seeds
    wide = render(results(), "simple", width=10_000)
    headers = [ln for ln in text.splitlines() if ln.startswith("method ")]
    assert len(headers) > sum(ln.startswith("method ") for ln in wide.splitlines())  # split into parts
    rows = {ln.split()[0] for ln in text.splitlines() if ln.startswith(("finetune ", "original ", "retrain "))}
    assert rows == {"finetune", "original", "retrain"}
    # the parts hold every value the wide table holds
    rows_of = lambda t: [ln for ln in t.splitlines() if "  " in ln and not ln.startswith(("method", "-", " "))]  # noqa: E731
    values = lambda t: {(ln.split()[0], w) for ln in rows_of(t) for w in ln.split()[1:]}  # noqa: E731
    assert values(text) == values(wide)


def test_a_table_with_one_competing_row_marks_no_best():
    r = results()
    r["cells"] = [c for c in r["cells"] if c["method"] in ("original", "retrain", "finetune") or c["track"] != "unlearning"]
    t = main_table(tables(render(r, fmt="github")), "forget acc ≈")
    assert not any(v.endswith("*") for v in t["finetune"].values())
