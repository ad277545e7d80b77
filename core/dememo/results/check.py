"""The shape every reader of ``results.json`` relies on (the leaderboard, the report, ``submit``, the
board): :func:`shape_problem` says the first way a document departs from it. A results file is untrusted
data, so this is checked before anything reads it."""

from __future__ import annotations

import json
from typing import Any

from dememo.numbers import finite

#: nesting a results file may have (dememo writes about 8 levels); deeper documents are refused before any
#: reader recurses into them
MAX_DEPTH = 64
#: the largest magnitude of a metric or series value (accuracies, seconds, counts are far below it); larger
#: numbers overflow the leaderboard's statistics and the report's axes
MAX_MAGNITUDE = 1e15
STATUSES = ("ok", "failed", "skipped")
CELL_TEXT = ("track", "dataset", "method", "attack", "key", "status")
CELL_LABELS = ("forget", "poisoner", "unlearner", "train_attack", "architecture", "interplay_target")
SPEC_FIELDS = ("poisoner", "train_attack", "unlearner", "attack")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"it holds {name}, which JSON does not have (dememo writes null)")


def _short(value: Any, n: int = 60) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= n else text[: n - 3] + "..."


def _depth(value: Any) -> int:
    """The nesting depth of a JSON value (iterative: deep documents are what it looks for)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


def _number(v: Any, null: bool = True) -> bool:
    """A finite number within ``MAX_MAGNITUDE`` (or null, when ``null``)."""
    if v is None:
        return null
    f = finite(v)
    return f is not None and -MAX_MAGNITUDE <= f <= MAX_MAGNITUDE


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _spec(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("params", {}), dict)


#: seeds are 0 … S − 1 for a suite of S ≤ ``suite.MAX_SEEDS`` seeds (``verify --rerun`` plans every seed up to
#: a cell's)
MAX_SEEDS = 10_000


def _suite_problem(suite: Any) -> str | None:
    from dememo.planning.suite import check_tuned

    if not isinstance(suite, dict):
        return "'suite' is not an object"
    if not isinstance(suite.get("name"), str):
        return "suite.name is not a string"
    for key in ("references", "columns", "headline"):
        value = suite.get(key, {})
        if not isinstance(value, dict) or not all(_strings(x) for x in value.values()):
            return f"suite.{key} must map names to lists of strings"
    curves = suite.get("curves", [])
    if not isinstance(curves, list) or not all(
            isinstance(c, dict) and all(isinstance(c.get(k), str) for k in ("attack", "param", "column"))
            and isinstance(c.get("from_zero", True), bool) for c in curves):
        return "suite.curves must be a list of {attack, param, column} objects"
    tuned = suite.get("tuned")
    if not isinstance(tuned, (dict, type(None))):
        return "suite.tuned is not an object"
    try:
        check_tuned(tuned)
    except ValueError as exc:
        return f"suite.{exc}"
    return None


def _cell_problem(c: Any) -> str | None:
    if not isinstance(c, dict):
        return f"is a {type(c).__name__}, not an object"
    for k in CELL_TEXT:
        if not isinstance(c.get(k), str):
            return f"{k!r} is {'missing' if k not in c else 'not a string'}"
    if c["status"] not in STATUSES:
        return f"status {_short(c['status'])} is not one of {', '.join(STATUSES)}"
    for k in CELL_LABELS:
        if not isinstance(c.get(k), (str, type(None))):
            return f"{k!r} is not a string or null"
    if not (isinstance(c.get("seed"), int) and not isinstance(c["seed"], bool) and 0 <= c["seed"] < MAX_SEEDS):
        return f"'seed' is not an integer in [0, {MAX_SEEDS})"
    metrics = c.get("metrics")
    if not isinstance(metrics, dict):
        return "'metrics' is not an object"
    for col, v in metrics.items():
        if not _number(v):
            return f"metric {_short(col)} = {_short(v)} is not a number within ±{MAX_MAGNITUDE:g} or null"
    series = c.get("series")
    if not isinstance(series, (dict, type(None))):
        return "'series' is not an object"
    for col, v in (series or {}).items():
        if not (isinstance(v, dict) and isinstance(v.get("x"), list) and isinstance(v.get("y"), list)
                and all(_number(x, null=False) for x in v["x"]) and all(_number(y) for y in v["y"])):
            return f"series {_short(col)} is not {{x: [numbers], y: [numbers or null]}} within ±{MAX_MAGNITUDE:g}"
    for k in ("error", "selection"):
        if not isinstance(c.get(k), (dict, type(None))):
            return f"{k!r} is not an object or null"
    if not isinstance((c.get("selection") or {}).get("source"), (str, type(None))):
        return "selection.source is not a string"
    params = c.get("params")
    if params is None:
        return None
    if not isinstance(params, dict):
        return "'params' is not an object"
    for k in SPEC_FIELDS:
        if params.get(k) is not None and not _spec(params[k]):
            return f"params.{k} is not null or a {{name, version, params}} object"
    if not isinstance(params.get("metrics", []), list) or not all(_spec(m) for m in params.get("metrics", [])):
        return "params.metrics is not a list of {name, version, params} objects"
    data = params.get("data", {})
    if not isinstance(data, dict) or not isinstance(data.get("budgets", {}), dict) \
            or not all(_number(v, null=False) for v in data.get("budgets", {}).values()):
        return "params.data.budgets is not an object of numbers"
    return None


def shape_problem(data: dict[str, Any]) -> str | None:
    """The first way ``data`` departs from the shape every reader of results relies on (the leaderboard,
    the report, ``submit``, the board), as a short phrase; None when it has that shape."""
    if _depth(data) > MAX_DEPTH:
        return f"it is nested more than {MAX_DEPTH} levels deep"
    problem = _suite_problem(data.get("suite"))
    if problem:
        return problem
    env = data.get("environment", {})
    if not isinstance(env, dict) or not _number(env.get("wall_seconds")):
        return "'environment' is not an object with a numeric wall_seconds"
    plugins = data.get("plugins", [])
    if not isinstance(plugins, list):
        return "'plugins' is not a list"
    for i, p in enumerate(plugins):
        keys = ("family", "name", "version", "distribution", "distribution_version")
        if not isinstance(p, dict) or not all(isinstance(p.get(k), str) for k in keys):
            return f"plugin {i} is not an object with string {', '.join(keys)}"
        if not isinstance(p.get("sweeps", []), list) or not all(
                isinstance(w, dict) and isinstance(w.get("param"), str) for w in p.get("sweeps", [])):
            return f"plugin {i}: sweeps is not a list of {{param, ...}} objects"
    if not isinstance(data.get("plugin_load_failures", []), list):
        return "'plugin_load_failures' is not a list"
    columns = data.get("columns", {})
    if not isinstance(columns, dict):
        return "'columns' is not an object"
    for track, meta in columns.items():
        if not isinstance(meta, dict):
            return f"columns.{_short(track)} is not an object"
        for col, m in meta.items():
            where = f"columns.{_short(track)}.{_short(col)}"
            if not isinstance(m, dict):
                return f"{where} is not an object"
            for k in ("direction", "unit", "label", "reference", "metric", "description"):
                if not isinstance(m.get(k), str if k == "label" and k in m else (str, type(None))):
                    return f"{where}.{k} is not a string"
            if not _number(m.get("cap")):
                return f"{where}.cap is not a number or null"
            for k in ("wall_clock", "detail", "signed"):
                if not isinstance(m.get(k), (bool, type(None))):
                    return f"{where}.{k} is not true, false or null"
            if not isinstance(m.get("long_label"), (str, type(None))):
                return f"{where}.long_label is not a string or null"
            if not isinstance(m.get("plots", []), list) or not all(
                    isinstance(x, dict) and isinstance(x.get("figure"), str) for x in m.get("plots", [])):
                return f"{where}.plots is not a list of {{figure, ...}} objects"
            if not isinstance(m.get("tuning"), (dict, type(None))):
                return f"{where}.tuning is not an object or null"
    partial = data.get("partial")
    if partial is not None and not (
            isinstance(partial, dict) and all(isinstance(partial.get(k), int) and not isinstance(partial[k], bool)
                                              for k in ("cells_done", "cells_planned"))
            and 0 <= partial["cells_done"] <= partial["cells_planned"]):
        return "'partial' is not {cells_done, cells_planned} with 0 <= cells_done <= cells_planned"
    cells = data.get("cells")
    if not isinstance(cells, list):
        return "'cells' is not a list"
    for i, c in enumerate(cells):
        problem = _cell_problem(c)
        if problem:
            key = c.get("key") if isinstance(c, dict) else None
            return f"cell {i}{f' ({key[:12]})' if isinstance(key, str) else ''}: {problem}"
    try:  # a lone surrogate escape ("\\ud800") reads into a string no file can be written with
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"it holds a string that is not valid Unicode ({exc.object[exc.start:exc.end]!a}, a lone surrogate)"
    return None
