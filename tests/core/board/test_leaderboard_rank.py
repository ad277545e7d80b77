"""The leaderboard's composite rank (its rule printed under each table) and the JSON form of the tables."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from support.board import main_table, results, tables

from dememo.board.leaderboard import RANK_RULE, average_ranks, composite_rank, render, to_json


def test_average_ranks_share_ties_and_put_missing_rows_last():
    ranks = average_ranks({"a": 0.1, "b": 0.1, "c": 0.5}, ["a", "b", "c", "d", "e"])
    assert ranks == {"a": 1.5, "b": 1.5, "c": 3.0, "d": 4.5, "e": 4.5}


@given(st.dictionaries(st.sampled_from("abcdefg"), st.floats(-5, 5), max_size=7), st.integers(0, 3))
def test_ranks_are_a_fair_split_of_1_to_n(scores, extra):
    rows = sorted(set(scores) | {f"missing{i}" for i in range(extra)})
    ranks = average_ranks(scores, rows)
    n = len(rows)
    assert set(ranks) == set(rows)
    assert abs(sum(ranks.values()) - n * (n + 1) / 2) < 1e-9
    for m, r in ranks.items():
        assert 1 <= r <= n
        for o in rows:  # a strictly better score never ranks worse
            if m in scores and (o not in scores or scores[m] < scores[o] - 1e-9):
                assert r < ranks[o]


def test_composite_rank_is_the_mean_of_column_ranks():
    rows = ["x", "y", "z"]
    rank = composite_rank([{"x": 0.0, "y": 1.0, "z": 2.0}, {"x": 2.0, "y": 1.0, "z": 0.0}, {"y": 0.0}], rows)
    assert rank == {"x": (1 + 3 + 2.5) / 3, "y": (2 + 2 + 1) / 3, "z": (3 + 1 + 2.5) / 3}


def test_tables_carry_the_rank_column_and_its_rule():
    md = render(results(), fmt="github")
    t = main_table(tables(md), "forget acc ≈")
    # three ranked columns (the synthetic runtime is not marked wall-clock): forget acc ≈ retrain's 0.80
    # (GA 0.78 first, FT 0.95 second), test acc ↑ (FT 0.93 first, GA 0.86) and runtime ↓ (FT 1.5 s first)
    assert t["retrain"]["rank ↓"] == "ref" and t["original"]["rank ↓"] == "ref"
    assert t["finetune"]["rank ↓"] == "1.3" and t["gradient-ascent"]["rank ↓"] == "1.7"
    assert RANK_RULE.format(k=3) in md
    assert RANK_RULE.split("{k}")[0] in md


def test_json_tables_are_the_printed_tables():
    data = results()
    doc = json.loads(json.dumps(to_json(data)))
    assert doc["schema"] == "dememo.leaderboard/1"
    printed = tables(render(data, fmt="github"))
    json_tables = [t for g in doc["groups"] for t in g["tables"]]
    assert len(json_tables) == len(printed)
    for table, parsed in zip(json_tables, printed):
        assert {row[0]: dict(zip(table["header"], row)) for row in table["rows"]} == parsed
    unlearning = next(g for g in doc["groups"] if g["track"] == "unlearning")
    main = unlearning["tables"][0]
    assert main["rule"] and set(main["rank"]) == {"finetune", "gradient-ascent"}


def test_wide_tables_print_in_parts_that_keep_every_value():
    from dememo.board.leaderboard import split_columns

    header = ["method", "params", "rank ↓"] + [f"c{i}" for i in range(25)] + ["seeds"]
    rows = [[f"m{r}", "tuned", "1.0"] + [f"{r}.{i}" for i in range(25)] + ["3"] for r in range(4)]
    parts = split_columns(header, rows, width=11)
    assert [len(h) for h, _ in parts] == [3 + 11 + 1, 3 + 11 + 1, 3 + 3 + 1]
    for h, rs in parts:
        assert h[:3] == ["method", "params", "rank ↓"] and h[-1] == "seeds"
        assert [r[0] for r in rs] == ["m0", "m1", "m2", "m3"]
    merged = {h: [r[i] for r in rs] for h, rs in parts for i, h in enumerate(h)}
    assert merged == {h: [r[i] for r in rows] for i, h in enumerate(header)}
    assert split_columns(header[:5] + ["seeds"], [r[:5] + ["3"] for r in rows]) == [(header[:5] + ["seeds"], [r[:5] + ["3"] for r in rows])]


def test_a_column_a_metric_entry_contributed_is_shown_and_not_ranked():
    """A metric's entry gives its column to other entries' rows (``build_board``); the rank stays the rows'
    owners' columns: a contributed "higher" column that favours gradient-ascent changes no rank."""
    data = results()
    data["columns"]["unlearning"]["extra"] = {"label": "extra", "direction": "higher", "unit": "fraction",
                                              "reference": None, "contributed": "a metric entry"}
    for c in data["cells"]:
        if c["track"] == "unlearning":
            c["metrics"]["extra"] = {"finetune": 0.0, "gradient-ascent": 1.0}.get(c["method"], 0.5)
    md = render(data, fmt="github")
    t = main_table(tables(md), "forget acc ≈")
    assert t["finetune"]["rank ↓"] == "1.3" and t["gradient-ascent"]["rank ↓"] == "1.7"  # as without it
    assert t["gradient-ascent"]["extra ↑"] == "100.0*" and RANK_RULE.format(k=3) in md
