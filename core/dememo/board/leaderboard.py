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
import re
import textwrap
from collections import defaultdict
from typing import Any

from tabulate import tabulate

from dememo.numbers import finite
from dememo.results.aggregate import stats
from dememo.results.record import CellRecord, records

ARROWS = {"higher": "↑", "lower": "↓", "match": "≈"}

#: characters with a meaning in (GitHub) Markdown, backslash-escaped in text that comes from results or bundles
MD_SPECIAL = re.compile(r"([\\`*_\[\]!|~])")


def md_escape(text: Any) -> Any:
    """``text`` as Markdown that shows it literally: line breaks and other unprintable characters become
    spaces (a table row stays one row), ``&``, ``<`` and ``>`` become entities (no raw HTML), Markdown's
    punctuation is backslash-escaped (``|`` cannot add a table column, ``![x](url)`` is no image, ``*``/``_``
    no emphasis) and ``://`` is written with entities (no automatic link). None stays None (an empty cell).
    Names and labels in a bundle are untrusted data; this keeps them text on the board."""
    if text is None:
        return None
    out = "".join(ch if ch.isprintable() else " " for ch in str(text))
    out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return MD_SPECIAL.sub(r"\\\1", out).replace("://", ":&#47;&#47;")


#: first characters that make a spreadsheet read a CSV field as a formula (OWASP "CSV injection")
CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: Any) -> Any:
    """A label for a CSV field: text a spreadsheet would run as a formula (``=HYPERLINK(...)``, ``@SUM``,
    ``+cmd``, ``-2+3``) gets a leading ``'``, as OWASP advises, so it stays text. Numbers are written apart
    (a negative mean stays a number); labels come from results and bundles, untrusted data."""
    return "'" + text if isinstance(text, str) and text.startswith(CSV_FORMULA) else text


def md_code(text: str) -> str:
    """``text`` as inline code when it is a plain name (letters, digits, ``.-_`` and spaces), else escaped
    text: a backtick in a suite name must not end the code span."""
    return f"`{text}`" if re.fullmatch(r"[\w.\- ]+", text) else md_escape(text)


def _same(text: Any) -> Any:
    return text


def _escaped_table(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """A table with its results-supplied text escaped for Markdown: every header (column and attack labels)
    and the label columns (method, params); the numbers are formatted here and left as they are."""
    labels = [i for i, h in enumerate(header) if h in LABEL_COLUMNS]
    return ([md_escape(h) for h in header],
            [[md_escape(v) if i in labels else v for i, v in enumerate(row)] for row in rows])


DIGITS = {"fraction": 1, "number": 3, "seconds": 2, "epochs": 1, "count": 0}


def _fmt(mean: float | None, std: float | None, unit: str, cap: float | None = None) -> str:
    if mean is None:
        return "n/a"
    if cap is not None and mean > cap:  # a censored measurement (e.g. relearning never reached its target)
        return f"> {cap:g}"
    scale = 100.0 if unit == "fraction" else 1.0
    digits = DIGITS.get(unit, 3)
    text = f"{mean * scale:.{digits}f}"
    if std is not None and std > 0:
        text += f" ± {std * scale:.{digits}f}"
    return text


_finite = finite


def groups(results: dict[str, Any]) -> dict[tuple[str, str, str | None], list[CellRecord]]:
    out: dict[tuple[str, str, str | None], list[CellRecord]] = defaultdict(list)
    for cell in records(results["cells"]):
        out[(cell.track, cell.dataset, cell.forget)].append(cell)
    return dict(out)


TRACK_ORDER = {"unlearnability": 0, "unlearning": 1, "interplay": 2}


def sorted_groups(results: dict[str, Any]):
    return sorted(groups(results).items(), key=lambda kv: (TRACK_ORDER.get(kv[0][0], 3), kv[0][0], kv[0][1], kv[0][2] or ""))


def reference_rows(results: dict[str, Any], cells: list[CellRecord]) -> set[str]:
    """The rows (method labels) that are references, never marked best: a reference poisoner without a
    learner-side attack (e.g. ``none``), a reference unlearner (``original``, ``retrain``); on the interplay
    track a row is a reference when its unlearner is."""
    refs = results.get("suite", {}).get("references", {})

    def name(label: str | None) -> str | None:
        return label.split("(")[0] if label else None

    out = set()
    for c in cells:  # a cell without the plugin fields (hand-made results) is read by its row label
        if c.track == "unlearnability":
            if name(c.method if c.poisoner is None else c.poisoner) in refs.get("poisoner", []) and name(c.train_attack) in (None, "none"):
                out.add(c.method)
        elif name(c.method if c.unlearner is None else c.unlearner) in refs.get("unlearner", []):
            out.add(c.method)
    return out


def _scores(meta: dict[str, Any], means: dict[str, float | None], references: set[str],
            paired: dict[str, str] | None = None) -> dict[str, float]:
    """Each non-reference row's score for a column, lower = better: −mean (higher is better), mean (lower
    is better) or |mean − reference row's mean| (``match``; ``paired`` maps each row to its own reference row,
    as on the interplay track, where each poisoner has its own retrain). Empty for ``info`` columns; rows
    without a value have no score."""
    direction = meta.get("direction", "info")
    if direction == "match":
        ref = meta.get("reference")
        if not ref:
            return {}
        out = {}
        for m, v in means.items():
            target = means.get((paired or {}).get(m, ref))
            if v is not None and target is not None and m not in references:
                out[m] = abs(v - target)
        return out
    if direction in ("higher", "lower"):
        sign = -1.0 if direction == "higher" else 1.0
        return {m: sign * v for m, v in means.items() if v is not None and m not in references}
    return {}


def _best(meta: dict[str, Any], means: dict[str, float | None], references: set[str],
          paired: dict[str, str] | None = None) -> set[str]:
    """Rows with the best mean for a column, by its direction; reference rows never win, and a column where
    fewer than two non-reference rows have a value marks none (one row is not the best of anything)."""
    scored = _scores(meta, means, references, paired)
    if len(scored) < 2:
        return set()
    goal = min(scored.values())
    return {m for m, v in scored.items() if math.isclose(v, goal, abs_tol=1e-12)}


RANK_RULE = ("rank: the mean, over the {k} columns marked ↑ ↓ ≈ (wall-clock columns, and columns a metric's entry "
             "gives other entries' rows, left out), of the row's rank among the non-reference rows in that column (1 = "
             "best; ties share their mean rank; a row with no value in a column ranks last there); reference rows are "
             "not ranked.")


def average_ranks(scores: dict[str, float], rows: list[str]) -> dict[str, float]:
    """Ranks 1..n of ``rows`` by ``scores`` (lower = better); tied scores share the mean of their ranks, and
    rows without a score tie for the last places."""
    ordered = sorted(rows, key=lambda m: (scores.get(m, math.inf), m))
    out: dict[str, float] = {}
    i = 0
    while i < len(ordered):
        j = i
        value = scores.get(ordered[i], math.inf)
        while j + 1 < len(ordered) and (scores.get(ordered[j + 1], math.inf) == value
                                        or math.isclose(scores.get(ordered[j + 1], math.inf), value, abs_tol=1e-12)):
            j += 1
        for m in ordered[i : j + 1]:
            out[m] = (i + j) / 2 + 1
        i = j + 1
    return out


def composite_rank(per_column: list[dict[str, float]], rows: list[str]) -> dict[str, float]:
    """The mean over columns of each row's ``average_ranks`` (``RANK_RULE``)."""
    if not per_column or not rows:
        return {}
    ranks = [average_ranks(scores, rows) for scores in per_column]
    return {m: sum(r[m] for r in ranks) / len(ranks) for m in rows}


#: units a column header names, unless its label already does (fractions are shown as %, said by the legend;
#: numbers and counts need none): unit → (suffix, words that already name it)
UNIT_SUFFIX = {"seconds": ("s", ("(s)", "second")), "epochs": ("epochs", ("epoch",))}


def _header(meta: dict[str, Any], key: str) -> str:
    label = str(meta.get("label", key))
    suffix, named = UNIT_SUFFIX.get(meta.get("unit", ""), (None, ()))
    if suffix and not any(word in label.lower() for word in named):
        label = f"{label} ({suffix})"
    return f"{label} {ARROWS.get(meta.get('direction', ''), '')}".strip()


def _table(results, cells, columns: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Rows = methods; ``columns`` = (metric column, attack, header)."""
    track = cells[0].track
    meta_all = results.get("columns", {}).get(track, {})
    references = reference_rows(results, cells)
    methods = sorted({c.method for c in cells}, key=lambda m: (m not in references, m))
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    failed: dict[tuple[str, str], list[CellRecord]] = defaultdict(list)
    for c in cells:
        if c.status == "failed":
            failed[(c.method, c.attack)].append(c)
        for col, v in c.metrics.items():
            values[(c.method, col, c.attack)].append(v)
    by_key = {k: stats(v) for k, v in values.items()}
    paired = _paired_references(cells) if track == "interplay" else None
    means = {(col, attack): {m: by_key.get((m, col, attack), (None,))[0] for m in methods} for col, attack, _ in columns}
    best = {key: _best(meta_all.get(key[0], {}), means[key], references, paired) for key in means}
    # a column a metric's entry gives the board's rows (``contributed``) adds information, never rank: the rows'
    # owners did not choose it, and older rows it does not cover would rank last
    ranked = [key for key in means if meta_all.get(key[0], {}).get("direction") in ("higher", "lower", "match")
              and not meta_all.get(key[0], {}).get("wall_clock") and not meta_all.get(key[0], {}).get("contributed")]
    candidates = [m for m in methods if m not in references]
    ranks = (composite_rank([_scores(meta_all.get(k[0], {}), means[k], references, paired) for k in ranked], candidates)
             if len(ranked) >= 2 and len(candidates) >= 2 else {})
    sources = _selections(cells) if track != "unlearnability" and all(a == "none" for _, a, _ in columns) else None
    rows = []
    for m in methods:
        row = [m] + ([sources.get(m, "")] if sources is not None else [])
        if ranks:
            row.append(f"{ranks[m]:.1f}" if m in ranks else "ref")
        for col, attack, _ in columns:
            mean, std, _n = by_key.get((m, col, attack), (None, None, 0))
            if mean is None and failed.get((m, attack)):
                row.append("FAILED")
            else:
                meta = meta_all.get(col, {})
                row.append(_fmt(mean, std, meta.get("unit", "number"), meta.get("cap"))
                           + ("*" if m in best[(col, attack)] else ""))
        row.append(str(len({c.seed for c in cells if c.method == m})))
        rows.append(row)
    header = (["method"] + (["params"] if sources is not None else []) + (["rank ↓"] if ranks else [])
              + [h for _, _, h in columns] + ["seeds"])
    return {"header": header, "rows": rows, "failed": failed, "rank": ranks,
            "rule": RANK_RULE.format(k=len(ranked)) if ranks else None}


def _paired_references(cells: list[CellRecord]) -> dict[str, str]:
    """Interplay rows ``poisoner → unlearner`` and the row of their own retrain, ``poisoner → retrain``
    (each poisoner's mixture has its own paired retrain)."""
    retrain = {c.poisoner: c.method for c in cells if (c.unlearner or "").split("(")[0] == "retrain"}
    return {c.method: retrain[c.poisoner] for c in cells if c.poisoner in retrain}


SOURCES = {"tuned": "tuned", "suite": "suite", "default": "default", "set": "--set"}


def _selections(cells: list[CellRecord]) -> dict[str, str]:
    """How each row's unlearner parameters were chosen (``Cell.selection``): tuned, suite, default, --set."""
    out: dict[str, set[str]] = defaultdict(set)
    for c in cells:
        source = (c.selection or {}).get("source")
        if source:
            out[c.method].add(SOURCES.get(source, source))
    return {m: "/".join(sorted(v)) for m, v in out.items()}


def tuning_note(results: dict[str, Any], esc: Any = None) -> str | None:
    """One line saying how tuned parameters were chosen (from the suite's tuning record); ``esc`` escapes
    the suite's text in it (``md_escape`` for Markdown)."""
    tuned = (results.get("suite") or {}).get("tuned")
    how = (results.get("suite") or {}).get("tuning")
    own = any((c.get("selection") or {}).get("source") == "tuned" and (c.get("selection") or {}).get("tuning") != how
              for c in results.get("cells", []) if isinstance(c, dict))
    if not tuned:
        return ("params: tuned = chosen by `dememo-bench tune` and read from the unlearner's own tuning file "
                "(smallest Avg Gap to retrain on the validation split over tuning seeds disjoint from the seeds "
                "reported here; each cell's selection records the file, the objective and the trials); suite = set "
                "in the suite file; default = the plugin's defaults.") if own else None
    seeds = tuned.get("seeds") or []
    span = f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else ", ".join(map(str, seeds))
    return (f"params: tuned = chosen by `dememo-bench tune` ({esc(how) if esc else how}): smallest Avg Gap "
            f"to retrain on the validation split over tuning seeds {span} (disjoint from the seeds reported here); "
            "suite = set in the suite file; default = the plugin's defaults. The search log is in results.json "
            "(suite.tuned)" + ("; rows tuned from an unlearner's own tuning file name it in their selection." if own
                               else "."))


def without_param(label: str, param: str) -> str:
    """An attack label with the swept parameter dropped: ``weight-recovery(eta=0.5, method=sgd)`` →
    ``weight-recovery(method=sgd)``."""
    name, _, rest = label.partition("(")
    kept = [p for p in rest.rstrip(")").split(", ") if p and not p.startswith(f"{param}=")]
    return f"{name}({', '.join(kept)})" if kept else name


def area_under(points: dict[float, float]) -> float | None:
    """Trapezoidal area under a curve given as {x: y}, divided by the x range (so a constant curve at y
    has area y); None with fewer than two points."""
    xs = sorted(points)
    if len(xs) < 2 or xs[-1] == xs[0]:
        return None
    span = xs[-1] - xs[0]
    ts = [(x - xs[0]) / span for x in xs]  # on [0, 1] first: a span near the smallest float does not underflow
    return sum((ts[i + 1] - ts[i]) * (points[xs[i]] + points[xs[i + 1]]) / 2 for i in range(len(xs) - 1))


def curve_values(results: dict[str, Any], cells: list[CellRecord]) -> dict[tuple[str, str, str], list[float]]:
    """Per-seed areas under each suite curve: {(method, curve label, column): [area per seed]}."""
    out: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for curve in results.get("suite", {}).get("curves", []):
        attack, param, column = curve["attack"], curve["param"], curve["column"]
        points: dict[tuple[str, str, int], dict[float, float]] = defaultdict(dict)
        base: dict[tuple[str, int], float] = {}
        for c in cells:
            y = _finite(c.metrics.get(column))
            if c.status != "ok" or y is None:  # a metric that came out undefined (null) is no point
                continue
            spec = (c.params or {}).get("attack") or {}
            given = spec.get("params") or {}
            if spec.get("name") == attack and param in given:
                x = _finite(given[param])
                if x is not None:
                    points[(c.method, without_param(c.attack, param), c.seed)][x] = y
            elif c.attack == "none":
                base[(c.method, c.seed)] = y
        for (method, label, seed), pts in sorted(points.items()):
            if curve.get("from_zero", True) and (method, seed) in base:
                pts = {0.0: base[(method, seed)], **pts}
            area = area_under(pts)
            if area is not None:
                out[(method, f"{label} AUC over {param}", column)].append(area)
    return dict(out)


def _curve_table(results: dict[str, Any], cells: list[CellRecord]) -> dict[str, Any] | None:
    values = curve_values(results, cells)
    if not values:
        return None
    track = cells[0].track
    meta_all = results.get("columns", {}).get(track, {})
    references = reference_rows(results, cells)
    methods = sorted({m for m, _, _ in values}, key=lambda m: (m not in references, m))
    columns = sorted({(label, col) for _, label, col in values})
    rows = []
    best = {}
    for label, col in columns:
        means = {m: stats(values.get((m, label, col), []))[0] for m in methods}
        best[(label, col)] = _best(meta_all.get(col, {}), means, references)
    for m in methods:
        row = [m]
        for label, col in columns:
            mean, std, _ = stats(values.get((m, label, col), []))
            unit = meta_all.get(col, {}).get("unit", "number")
            row.append(_fmt(mean, std, unit) + ("*" if m in best[(label, col)] else ""))
        row.append(str(max(len(values.get((m, label, col), [])) for label, col in columns)))
        rows.append(row)
    header = ["method"] + [f"{label} ({_header(meta_all.get(col, {}), col)})" for label, col in columns] + ["seeds"]
    caption = "Area under the attack-strength curve (normalised by its range; the unattacked model is strength 0)"
    return {"header": header, "rows": rows, "failed": {}, "caption": caption}


def build_tables(results: dict[str, Any], cells: list[CellRecord]) -> list[dict[str, Any]]:
    """The main table (every metric without a model-stage attack) and, per headline column, one table of
    that column under every model-stage attack."""
    track = cells[0].track
    meta_all = results.get("columns", {}).get(track, {})
    order = list(results.get("suite", {}).get("columns", {}).get(track, [])) + list(meta_all)
    present = sorted({k for c in cells if c.attack == "none" for k in c.metrics
                      if not meta_all.get(k, {}).get("detail")},  # details stay in results.json and the CSV
                     key=lambda k: order.index(k) if k in order else len(order))
    tables = [dict(_table(results, cells, [(k, "none", _header(meta_all.get(k, {}), k)) for k in present]), caption=None)]
    attacks = sorted({c.attack for c in cells}, key=lambda a: (a != "none", a))
    if len(attacks) > 1:
        # rows the suite never attacks (e.g. learner-side attacks when its grid runs model-stage attacks
        # after standard training only) would be all n/a here: they are in the main table
        attacked = {c.method for c in cells if c.attack != "none"}
        under = [c for c in cells if c.method in attacked]
        for col in results.get("suite", {}).get("headline", {}).get(track, []):
            if not any(col in c.metrics for c in under):
                continue
            caption = f"{_header(meta_all.get(col, {}), col)} under model-stage attacks"
            tables.append(dict(_table(results, under, [(col, a, a) for a in attacks]), caption=caption))
    curves = _curve_table(results, cells)
    if curves is not None:
        tables.append(curves)
    notes = []
    failed = {k: v for t in tables for k, v in t["failed"].items()}
    for (m, attack), bad in sorted(failed.items(), key=lambda kv: kv[0]):
        err = bad[0].error
        notes.append(f"FAILED {m} @{attack} ({len(bad)} cell{'s' if len(bad) > 1 else ''}): "
                     f"[{err.stage if err else '?'}] {err.message if err else 'unknown error'}")
    tables[-1]["notes"] = sorted(set(notes))
    return tables


def title(track: str, dataset: str, forget: str | None, cells: list[CellRecord]) -> str:
    arch = cells[0].architecture or "?"
    if track == "unlearnability":
        budget = (cells[0].params or {}).get("data", {}).get("budgets", {})
        b = ", ".join(f"{k} {v:.4g}" + (f" ({v * 255:.3g}/255)" if k == "linf" else "") for k, v in sorted(budget.items()))
        return f"Unlearnability — {dataset} / {arch} (budget {b})"
    if track == "interplay":
        return f"Interplay — {dataset} / {arch}, forget set {forget}: rows are poisoner → unlearner"
    return f"Unlearning — {dataset} / {arch}, forget set {forget}"


LEGEND = ("Mean ± std over seeds; fractions shown as %. ↑ higher is better, ↓ lower is better, ≈ closest to the "
          "reference row (retrain) is better — always from the dememorizer's side (lower test accuracy = a stronger "
          "poison). * marks the best non-reference row where two or more compete; reference rows (none, original, retrain) "
          "are never marked.")


#: at most this many metric columns per printed table; wider tables are printed in parts, each repeating the
#: row labels (the HTML page and the JSON keep one table)
MAX_PRINTED_COLUMNS = 11
LABEL_COLUMNS = ("method", "params", "rank ↓")


def label_span(header: list[str]) -> tuple[int, int]:
    """How many leading label columns (method, params, rank) and trailing ones (seeds) every part repeats."""
    lead = 0
    while lead < len(header) and header[lead] in LABEL_COLUMNS:
        lead += 1
    return lead, 1 if header and header[-1] == "seeds" else 0


def split_columns(header: list[str], rows: list[list[str]], width: int = MAX_PRINTED_COLUMNS) -> list[tuple[list[str], list[list[str]]]]:
    """A table as parts of at most ``width`` metric columns, each with the leading label columns
    (method, params, rank) and the trailing ``seeds`` column."""
    lead, tail = label_span(header)
    middle = list(range(lead, len(header) - tail))
    if len(middle) <= width:
        return [(header, rows)]
    keep = list(range(lead)), list(range(len(header) - tail, len(header)))
    out = []
    for start in range(0, len(middle), width):
        idx = keep[0] + middle[start : start + width] + keep[1]
        out.append(([header[i] for i in idx], [[row[i] for i in idx] for row in rows]))
    return out


def split_to_width(header: list[str], rows: list[list[str]], width: int) -> list[tuple[list[str], list[list[str]]]]:
    """A table as parts no wider than ``width`` characters as tabulate's ``simple`` format draws them (two
    spaces between columns), each with the leading label columns and the trailing ``seeds`` column; a part
    holds at least one metric column, however wide."""
    # tabulate pads a header by two (its MIN_PADDING) and puts two spaces between columns
    widths = [max([len(h) + 2 for h in header[i].splitlines() or [""]] + [len(r[i]) for r in rows])
              for i in range(len(header))]
    lead, tail = label_span(header)
    fixed = list(range(lead)) + list(range(len(header) - tail, len(header)))
    base = sum(widths[i] + 2 for i in fixed)
    parts: list[list[int]] = [[]]
    used = base
    for i in range(lead, len(header) - tail):
        if parts[-1] and used + widths[i] + 2 > width:
            parts.append([])
            used = base
        parts[-1].append(i)
        used += widths[i] + 2
    if len(parts) == 1:
        return [(header, rows)]
    out = []
    for middle in parts:
        idx = list(range(lead)) + middle + list(range(len(header) - tail, len(header)))
        out.append(([header[i] for i in idx], [[row[i] for i in idx] for row in rows]))
    return out


def terminal_width() -> int:
    """The terminal's width (``$COLUMNS`` first; 120 when the output is not a terminal)."""
    import shutil

    return shutil.get_terminal_size((120, 24)).columns


def render(results: dict[str, Any], fmt: str = "simple", width: int | None = None) -> str:
    """All tables in one text, as tabulate format ``fmt`` (``simple`` for the terminal, ``github`` for Markdown);
    partial results open with their :func:`partial_note`. A ``simple`` table wider than ``width`` (default:
    the terminal's) is printed in parts, each repeating the row labels."""
    parts = []
    md = fmt == "github"
    esc = md_escape if md else _same  # bundle and results text is data: in Markdown it must stay text
    limit = width or terminal_width()

    def prose(text: str, indent: str = "") -> str:
        """A line of prose as the format wants it: as it is in Markdown, wrapped to the width in a terminal."""
        if md:
            return text
        return textwrap.fill(text, width=max(limit, 40), initial_indent=indent, subsequent_indent=indent + "  ",
                             break_long_words=False, break_on_hyphens=False)

    partial = partial_note(results)
    if partial:
        parts += [f"**{partial}**" if md else prose(partial), ""]
    for (track, dataset, forget), cells in sorted_groups(results):
        parts.append(("### " + esc(title(track, dataset, forget, cells))) if md else
                     prose("== " + title(track, dataset, forget, cells) + " =="))
        for table in build_tables(results, cells):
            pieces = split_columns(table["header"], table["rows"])
            if not md:
                pieces = [p for h, r in pieces for p in split_to_width(h, r, limit)]
            for i, (header, rows) in enumerate(pieces):
                caption = table["caption"]
                if len(pieces) > 1:
                    caption = f"{caption or 'Metrics'} (part {i + 1} of {len(pieces)})"
                if caption:
                    parts.append(("\n*" + esc(caption) + "*\n") if md else "\n" + prose(caption + ":"))
                elif md:
                    parts.append("")
                if md:
                    header, rows = _escaped_table(header, rows)
                parts.append(tabulate(rows, headers=header, tablefmt=fmt, disable_numparse=True))
            if table.get("rule"):
                parts.append(("\n_" + table["rule"] + "_") if md else prose(table["rule"], "  "))
            for note in table.get("notes", []):
                parts.append(("- " + esc(note)) if md else prose(note, "  "))
        parts.append("")
    if parts:
        parts.append(prose(LEGEND))
        note = tuning_note(results, esc) if any(t != "unlearnability" for t, _, _ in groups(results)) else None
        if note:
            parts.append(prose(note))
    return "\n".join(parts)


def partial_note(results: dict[str, Any]) -> str | None:
    """The line every format of partial results carries ("PARTIAL: n of m cells"), or None when the results
    are complete (no ``partial`` field)."""
    p = results.get("partial")
    if not isinstance(p, dict):
        return None
    return (f"PARTIAL: {p.get('cells_done')} of {p.get('cells_planned')} cells (the run was stopped before the "
            "end; run the same command again to finish it)")


def _partial_cell(results: dict[str, Any]) -> str:
    """The CSV's ``partial`` column: empty for complete results, else "n/m" (cells done of planned)."""
    p = results.get("partial")
    return f"{p.get('cells_done')}/{p.get('cells_planned')}" if isinstance(p, dict) else ""


def to_json(results: dict[str, Any]) -> dict[str, Any]:
    """The printed tables as data (schema ``dememo.leaderboard/1``): per group its track, dataset, forget
    set and title, and per table the caption, header, rows (the rendered strings, as in the terminal and
    Markdown), the composite rank's rule and per-row values, and the failure notes."""
    out = []
    for (track, dataset, forget), cells in sorted_groups(results):
        tables = [{"caption": t["caption"], "header": t["header"], "rows": t["rows"], "rule": t.get("rule"),
                   "rank": t.get("rank") or {}, "notes": t.get("notes", [])} for t in build_tables(results, cells)]
        out.append({"track": track, "dataset": dataset, "forget": forget,
                    "title": title(track, dataset, forget, cells), "tables": tables})
    return {"schema": "dememo.leaderboard/1", "legend": LEGEND, "tuning": tuning_note(results),
            "partial": results.get("partial") if isinstance(results.get("partial"), dict) else None, "groups": out}


def to_csv(results: dict[str, Any]) -> str:
    """Long format: one row per (table, method, column, attack) with mean, std and the number of seeds. The
    last column, ``partial``, is empty for complete results and "n/m" (cells done of planned) on every row of
    partial ones: CSV has no comment line a reader would keep, and a per-row value survives filtering."""
    buf = io.StringIO()
    writer = _PartialWriter(csv.writer(buf), _partial_cell(results))
    writer.writerow(["track", "dataset", "forget", "method", "attack", "column", "direction", "mean", "std", "n", "failed_cells"])
    for (track, dataset, forget), cells in sorted_groups(results):
        columns_meta = results.get("columns", {}).get(track, {})
        values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        failed: dict[tuple[str, str], int] = defaultdict(int)
        for c in cells:
            if c.status == "failed":
                failed[(c.method, c.attack)] += 1
            for col, v in c.metrics.items():
                values[(c.method, c.attack, col)].append(v)
        for (method, attack, col), vals in sorted(values.items()):
            mean, std, n = stats(vals)
            writer.writerow([*map(csv_text, (track, dataset, forget or "", method, attack, col,
                                             columns_meta.get(col, {}).get("direction", ""))),
                             "" if mean is None else repr(mean), "" if std is None else repr(std), n,
                             failed.get((method, attack), 0)])
        for (method, attack), count in sorted(failed.items()):
            if not any(k[0] == method and k[1] == attack for k in values):
                writer.writerow([*map(csv_text, (track, dataset, forget or "", method, attack)), "", "", "", "", 0, count])
        for (method, label, col), vals in sorted(curve_values(results, cells).items()):
            mean, std, n = stats(vals)
            writer.writerow([*map(csv_text, (track, dataset, forget or "", method, label, f"{col}_auc",
                                             columns_meta.get(col, {}).get("direction", ""))),
                             "" if mean is None else repr(mean), "" if std is None else repr(std), n, 0])
    return buf.getvalue()


class _PartialWriter:
    """A ``csv.writer`` that appends the ``partial`` column to every row (its header first)."""

    def __init__(self, writer: Any, value: str):
        self.writer, self.value, self.header = writer, value, True

    def writerow(self, row: list[Any]) -> None:
        self.writer.writerow([*row, "partial" if self.header else self.value])
        self.header = False
