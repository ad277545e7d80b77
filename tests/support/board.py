"""Synthetic results for the leaderboard tests: two tracks, two seeds, one model-stage attack, failed
cells; and a parser of the rendered Markdown tables."""

from __future__ import annotations

import copy

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


def main_table(parsed, first_column):
    return next(t for t in parsed if first_column in next(iter(t.values())))
