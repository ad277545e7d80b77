"""Leaderboard tables from a results dict: terminal (tabulate), Markdown and CSV.

One table per (track, dataset, forget set); rows are methods, columns are ``metric@attack``; each entry is
the mean ± standard deviation over seeds. Which way is better is shown in the header (↑ higher, ↓ lower,
≈ closest to the reference row, e.g. ``retrain``) and the best row per column is marked with ``*``.
Numbers in [0, 1] are shown as percentages.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from typing import Any

from tabulate import tabulate

ARROWS = {"higher": "↑", "lower": "↓", "match": "≈"}


def _fmt(mean: float | None, std: float | None, unit: str) -> str:
    if mean is None:
        return "n/a"
    scale = 100.0 if unit == "fraction" else 1.0
    digits = 1 if unit == "fraction" else 3
    text = f"{mean * scale:.{digits}f}"
    if std is not None and std > 0:
        text += f" ± {std * scale:.{digits}f}"
    return text


def _stats(values: list[float]) -> tuple[float | None, float | None, int]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None, 0
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def groups(results: dict[str, Any]) -> dict[tuple[str, str, str | None], list[dict[str, Any]]]:
    out: dict[tuple[str, str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for cell in results["cells"]:
        out[(cell["track"], cell["dataset"], cell.get("forget"))].append(cell)
    return dict(out)


def build_table(results: dict[str, Any], cells: list[dict[str, Any]]) -> dict[str, Any]:
    """A table as data: header, rows (label, entries), best marks and footnotes."""
    track = cells[0]["track"]
    columns_meta = results.get("columns", {}).get(track, {})
    headline = results.get("suite", {}).get("headline", {}).get(track, [])
    references = [n for fam in results.get("suite", {}).get("references", {}).values() for n in fam]
    attacks = sorted({c["attack"] for c in cells}, key=lambda a: (a != "none", a))
    cols: list[tuple[str, str]] = []
    for attack in attacks:
        present = sorted({k for c in cells if c["attack"] == attack for k in c["metrics"]},
                         key=lambda k: list(columns_meta).index(k) if k in columns_meta else 1e9)
        for col in present:
            if attack == "none" or col in headline:
                cols.append((col, attack))
    methods = sorted({c["method"] for c in cells}, key=lambda m: (m.split("(")[0] not in references, m))
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    failed: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in cells:
        if c["status"] == "failed":
            failed[(c["method"], c["attack"])].append(c)
        for col, v in c["metrics"].items():
            values[(c["method"], col, c["attack"])].append(v)
    stats = {k: _stats(v) for k, v in values.items()}
    best: dict[tuple[str, str], set[str]] = {}
    for col, attack in cols:
        meta = columns_meta.get(col, {})
        direction = meta.get("direction", "higher")
        means = {m: stats.get((m, col, attack), (None, None, 0))[0] for m in methods}
        target = None
        if direction == "match":
            ref = meta.get("reference")
            target = means.get(ref) if ref else None
            if target is None:
                continue
            scored = {m: abs(v - target) for m, v in means.items() if v is not None and m != ref}
            pick = min
        else:
            scored = {m: v for m, v in means.items() if v is not None and m not in references}
            pick = max if direction == "higher" else min
        if scored:
            goal = pick(scored.values())
            best[(col, attack)] = {m for m, v in scored.items() if math.isclose(v, goal, abs_tol=1e-12)}
    header = ["method"] + [
        f"{columns_meta.get(col, {}).get('label', col)} {ARROWS.get(columns_meta.get(col, {}).get('direction', ''), '')}".strip()
        + ("" if attack == "none" else f" @{attack}")
        for col, attack in cols
    ] + ["seeds"]
    rows = []
    notes = []
    for m in methods:
        row = [m]
        for col, attack in cols:
            mean, std, n = stats.get((m, col, attack), (None, None, 0))
            unit = columns_meta.get(col, {}).get("unit", "number")
            if mean is None and failed.get((m, attack)):
                text = "FAILED"
            else:
                text = _fmt(mean, std, unit) + ("*" if m in best.get((col, attack), set()) else "")
            row.append(text)
        seeds = sorted({c["seed"] for c in cells if c["method"] == m})
        row.append(str(len(seeds)))
        rows.append(row)
    for (m, attack), bad in sorted(failed.items()):
        err = bad[0].get("error") or {}
        notes.append(f"FAILED {m} @{attack} ({len(bad)} cell{'s' if len(bad) > 1 else ''}): "
                     f"[{err.get('stage', '?')}] {err.get('message', 'unknown error')}")
    return {"header": header, "rows": rows, "notes": notes}


def title(track: str, dataset: str, forget: str | None, cells: list[dict[str, Any]]) -> str:
    arch = cells[0].get("architecture", "?")
    if track == "unlearnability":
        budget = cells[0].get("params", {}).get("data", {}).get("budgets", {})
        b = ", ".join(f"{k} {v:.4g}" for k, v in sorted(budget.items()))
        return f"Unlearnability — {dataset} / {arch} (budgets: {b})"
    return f"Unlearning — {dataset} / {arch}, forget set {forget}"


LEGEND = ("Mean ± std over seeds; fractions shown as %. ↑ higher is better, ↓ lower is better, ≈ closest to the "
          "reference row (retrain) is better, from the dememorizer's side; * marks the best non-reference row. "
          "@attack columns are measured after that model-stage attack.")


def render(results: dict[str, Any], fmt: str = "simple") -> str:
    """All tables in one text, as tabulate format ``fmt`` (``simple`` for the terminal, ``github`` for Markdown)."""
    parts = []
    md = fmt == "github"
    for (track, dataset, forget), cells in sorted(groups(results).items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")):
        table = build_table(results, cells)
        heading = title(track, dataset, forget, cells)
        parts.append(("### " if md else "") + heading)
        if md:
            parts.append("")
        parts.append(tabulate(table["rows"], headers=table["header"], tablefmt=fmt, disable_numparse=True))
        for note in table["notes"]:
            parts.append(("- " if md else "  ") + note)
        parts.append("")
    if parts:
        parts.append(LEGEND)
    return "\n".join(parts)


def to_csv(results: dict[str, Any]) -> str:
    """Long format: one row per (table, method, column, attack) with mean, std and the number of seeds."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["track", "dataset", "forget", "method", "attack", "column", "direction", "mean", "std", "n", "failed_cells"])
    for (track, dataset, forget), cells in sorted(groups(results).items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")):
        columns_meta = results.get("columns", {}).get(track, {})
        values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        failed: dict[tuple[str, str], int] = defaultdict(int)
        for c in cells:
            if c["status"] == "failed":
                failed[(c["method"], c["attack"])] += 1
            for col, v in c["metrics"].items():
                values[(c["method"], c["attack"], col)].append(v)
        for (method, attack, col), vals in sorted(values.items()):
            mean, std, n = _stats(vals)
            writer.writerow([track, dataset, forget or "", method, attack, col,
                             columns_meta.get(col, {}).get("direction", ""),
                             "" if mean is None else repr(mean), "" if std is None else repr(std), n,
                             failed.get((method, attack), 0)])
        for (method, attack), count in sorted(failed.items()):
            if not any(k[0] == method and k[1] == attack for k in values):
                writer.writerow([track, dataset, forget or "", method, attack, "", "", "", "", 0, count])
    return buf.getvalue()
