"""tools/directions_table.py: the README's side-by-side table reads censored radii, missing figures and
reference rows as their definitions say."""

from __future__ import annotations

import importlib.util

from support import ROOT


def tool():
    spec = importlib.util.spec_from_file_location("directions_table", ROOT / "tools" / "directions_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cell(seed, method, metrics, track="unlearnability", dataset="mnist-10k", attack="none", forget=None):
    return {"seed": seed, "method": method, "metrics": metrics, "track": track, "dataset": dataset, "attack": attack,
            "forget": forget, "status": "ok"}


def runs(cells, seeds=3):
    t = tool()
    return t, t.Runs({"cells": [], "suite": {"seeds": seeds}}, {"cells": cells, "suite": {"seeds": seeds}})


def test_only_depth_radii_are_censored_and_they_are_summarised_by_the_median():
    t, r = runs([cell(s, "em", {"depth_eta": v, "ud": 1.1}) for s, v in enumerate([0.25, 5.0, 5.0])])
    assert t.num(r.mean("real", "mnist-10k", "unlearnability", "em", "depth_eta"), "depth_eta") == "> 4"
    assert t.num(r.mean("real", "mnist-10k", "unlearnability", "em", "ud"), "ud") == "1.10"  # a ratio, not a radius
    t, r = runs([cell(s, "em", {"depth_eta": v}) for s, v in enumerate([0.25, 0.25, 5.0])])
    assert r.mean("real", "mnist-10k", "unlearnability", "em", "depth_eta") == 0.25


def test_a_missing_or_null_figure_is_left_out_and_a_short_count_is_named(capsys):
    t, r = runs([cell(0, "em", {"ud": None}), cell(1, "em", {"ud": 0.5}), cell(2, "em", {})])
    assert r.mean("real", "mnist-10k", "unlearnability", "em", "ud") == 0.5
    assert "1 of 3 seeds" in capsys.readouterr().err
    assert r.mean("real", "mnist-10k", "unlearnability", "tap", "ud") is None and t.pct(None) == "—"


def test_the_interplay_gain_is_the_unlearners_not_the_references():
    share = "owner-50% (poisoned, forgotten)"
    cells = [cell(s, f"em(mode=class) → {m}", {"share_clean_gain": g, "share_clean_acc": 0.98}, "interplay", forget=share)
             for s in range(3) for m, g in (("original", 0.0), ("retrain", -0.02), ("finetune", -0.01))]
    _, r = runs(cells)
    rows = dict(tool().rows(r))
    (figure,) = [v for k, v in rows.items() if k.startswith("Unlearning does not give back")]
    assert figure[2].endswith("largest gain -1.0")
