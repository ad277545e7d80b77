"""``leaderboard.html``: the leaderboard as one self-contained page (inline CSS and JavaScript, figures as
``data:`` PNGs, no network reference of any kind).

The page holds, from the same data as ``leaderboard.md``:

- every table :func:`dememo.board.leaderboard.build_tables` builds for each (track, dataset, forget set), with its
  numbers, ``*`` best markers and failed-cell notes unchanged (the cell texts are build_tables' own);
- a column-help panel: for every column that appears, its label, the metric plugin that produced it, its
  direction, unit and description (``results["columns"]``), and per metric plugin the first paragraph of its
  module docstring (the paper and the formula) when that plugin is installed here;
- the figures of :func:`dememo.board.report.figures` (base64 PNGs with their captions);
- the environment line, the legend and the tuning note.

Sorting. Each header cell is a button; a click sorts the table's rows by that column, ascending, a second
click descending (``aria-sort`` on the header says which). Number columns sort on the mean (the first number
of ``mean ± std``, a censored ``> cap`` just above its cap); ``n/a`` and ``FAILED`` go last in either
direction; ties keep the original order. Reference rows (``none``, ``original``, ``retrain``: never marked
best) stay pinned on top in their original order, shaded and tagged "ref", since they are what the other rows
are read against. Deep links: ``leaderboard.html#sort=T,C`` (or ``#sort=T,C,desc``; several separated by
``;``) sorts table ``T`` (0-based, in page order; its ``id`` is ``tT``) by column ``C`` (0-based) on load.

Output is deterministic: the same results (and the same installed plugins) give a byte-identical page.
Drawing the figures is most of the rendering time (matplotlib, about 0.2 s a figure): inside
:func:`figure_cache` (a run's output directory, :func:`dememo.board.writer.write_outputs`) a figure drawn once
is read back by its key, so re-writing the same results draws nothing and never imports matplotlib.
``DEMEMO_HTML_PLOTS=0`` leaves the figures out of the page (``dememo-bench report`` still draws them), e.g. for
test suites that run the harness many times.
"""

from __future__ import annotations

import base64
import contextlib
import html
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from dememo.board import leaderboard
from dememo.board.leaderboard import LEGEND, build_tables, sorted_groups, title, tuning_note

if TYPE_CHECKING:
    from dememo.board.report import FigureCache

DIRECTIONS = {
    "higher": ("↑", "higher is better"),
    "lower": ("↓", "lower is better"),
    "match": ("≈", "closest to the reference row is better"),
    "info": ("", "information only (no best marked)"),
}
UNITS = {"fraction": "fraction, shown in %", "number": "number", "seconds": "seconds", "epochs": "epochs",
         "count": "count", "series": "series (in results.json and the plots)"}
TRACK_NAMES = {"unlearnability": "Unlearnability track", "unlearning": "Unlearning track", "interplay": "Interplay track"}
#: the columns every table has, besides the metric columns
FIXED = {
    "method": "the row: a poisoner (unlearnability), an unlearner (unlearning) or poisoner → unlearner (interplay), "
              "with its non-default parameters",
    "params": "how the unlearner's parameters were chosen: tuned (dememo-bench tune), suite (the suite file), "
              "default (the plugin's defaults) or --set",
    "rank ↓": "the composite rank of the row in its table (lower is better; its rule is written under the table); "
              "reference rows read ref",
    "seeds": "the number of seeds the row's numbers are over",
}
RANK = "rank ↓"
ATTACKED = " under model-stage attacks"
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
#: where :func:`render_page` keeps its figures' bytes (None: nowhere, every figure is drawn)
_CACHE: ContextVar[FigureCache | None] = ContextVar("dememo_figure_cache", default=None)

CSS = """body{font-family:system-ui,sans-serif;max-width:75em;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1.05em}
.env,.legend,.notes,figcaption,.hint{font-size:.85em;color:#555}.partial{color:#a00;border:1px solid #a00;padding:.3em .5em}code{background:#f4f4f4;padding:0 .2em}
.scroll{overflow-x:auto;max-width:100%;margin:.6em 0 1.4em}.scroll:focus-visible{outline:2px solid #36c}
table.lb{border-collapse:collapse;font-size:.85em}
table.lb caption{text-align:left;font-style:italic;padding:.2em 0}
table.lb th,table.lb td{border:1px solid #ddd;padding:.2em .5em;text-align:right;white-space:nowrap}
table.lb th[scope=row],table.lb td.text{text-align:left}
table.lb thead th{background:#f4f4f4;vertical-align:bottom}
table.lb thead button{all:inherit;cursor:pointer;border:0;padding:0;text-decoration:underline dotted}
table.lb thead button:focus-visible{outline:2px solid #36c}
table.lb th[aria-sort=ascending] button::after{content:" \\25B2"}
table.lb th[aria-sort=descending] button::after{content:" \\25BC"}
table.lb tr[data-ref]{background:#f3f3f3;color:#555}
table.lb tr[data-ref] th::after{content:"ref";font-size:.75em;margin-left:.4em;padding:0 .3em;border:1px solid #aaa;border-radius:3px}
table.lb td.best{font-weight:bold}table.lb td.failed{color:#b00}
dl.help dt{font-weight:bold;margin-top:.6em}dl.help dd{margin-left:1.5em}
figure{margin:.5em 0 1.5em}img{max-width:100%;height:auto}"""

SCRIPT = """(function () {
  "use strict";
  function key(row, col, numeric) {
    var cell = row.cells[col];
    if (!cell) return null;
    if (!numeric) return cell.textContent;
    var v = cell.getAttribute("data-v");
    return v === null ? null : parseFloat(v);
  }
  function sortTable(table, col, descending) {
    var header = table.tHead.rows[0].cells;
    var th = header[col];
    if (!th || !th.hasAttribute("data-type")) return;
    var numeric = th.getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var pinned = rows.filter(function (r) { return r.hasAttribute("data-ref"); });
    var rest = rows.filter(function (r) { return !r.hasAttribute("data-ref"); });
    rest.sort(function (a, b) {
      var x = key(a, col, numeric), y = key(b, col, numeric), c = 0;
      if (x === null || y === null) {
        c = (x === null) - (y === null);  /* n/a and FAILED last in either direction */
      } else {
        c = x < y ? -1 : x > y ? 1 : 0;
        if (descending) c = -c;
      }
      return c || (+a.getAttribute("data-i") - +b.getAttribute("data-i"));
    });
    pinned.concat(rest).forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(header, function (h) {
      if (h === th) h.setAttribute("aria-sort", descending ? "descending" : "ascending");
      else h.removeAttribute("aria-sort");
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.lb"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      var button = th.querySelector("button");
      if (button) button.addEventListener("click", function () {
        sortTable(table, col, th.getAttribute("aria-sort") === "ascending");
      });
    });
  });
  function fromHash() {
    var m = /^#sort=([0-9,;a-z]+)$/.exec(location.hash);
    if (!m) return;
    m[1].split(";").forEach(function (spec) {
      var p = spec.split(",");
      var table = document.getElementById("t" + parseInt(p[0], 10));
      if (table && table.tHead) sortTable(table, parseInt(p[1], 10), p[2] === "desc");
    });
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();"""


def _e(text: Any) -> str:
    """HTML-escaped text; a ``scheme://`` in it is written with character references, so that the page's
    source holds no URL at all (the text reads the same)."""
    return html.escape(str(text)).replace("://", ":&#47;&#47;")


def _inline(text: str) -> str:
    """Escaped text with ``code`` (reStructuredText) and `code` (Markdown) spans as <code>."""
    out = _e(text)
    out = re.sub(r"``(.+?)``", r"<code>\1</code>", out)
    return re.sub(r"`([^`]+?)`", r"<code>\1</code>", out)


def sort_value(text: str) -> float | None:
    """The number a table cell sorts on: the mean of ``mean ± std`` (its first number, best marker
    ignored), just above the cap for a censored ``> cap``; None for ``n/a``, ``FAILED`` and empty cells."""
    text = text.strip().rstrip("*").strip()
    censored = text.startswith(">")
    m = NUMBER.match(text.lstrip("> ").strip())
    if m is None:
        return None
    value = float(m.group())
    return value + 1e-9 * max(1.0, abs(value)) if censored else value


def _is_text(header: list[str], col: int) -> bool:
    """The method column, and the ``params`` column that main tables of unlearners carry second."""
    return col == 0 or (col == 1 and header[1] == "params")


def _header_keys(table: Mapping[str, Any], meta_all: Mapping[str, Any]) -> list[str | None]:
    """The metric column behind each header of a build_tables table (None: method, params, rank, seeds). Main
    tables (no caption) head a column with its header; a table under model-stage attacks heads its attacks
    and names its column in the caption; a curve table heads ``<curve> (<column header>)``."""
    headers: dict[str, str] = {}
    for key, meta in meta_all.items():
        headers.setdefault(leaderboard._header(meta, key), key)
    caption = table.get("caption") or ""
    header = list(table["header"])
    out: list[str | None] = []
    for col, h in enumerate(header):
        if _is_text(header, col) or col == len(header) - 1 or (h == RANK and table.get("rank")):
            out.append(None)
        elif not caption:
            out.append(headers.get(h))
        elif caption.endswith(ATTACKED):
            out.append(headers.get(caption[:-len(ATTACKED)]))
        else:
            out.append(next((k for hdr, k in headers.items() if h.endswith(f"({hdr})")), None))
    return out


def _table(index: int, table: Mapping[str, Any], keys: list[str | None], meta_all: Mapping[str, Any],
           references: set[str], track: str) -> str:
    caption = table.get("caption") or "Metrics of the unattacked models"
    header = list(table["header"])
    head = []
    for col, (h, key) in enumerate(zip(header, keys)):
        attrs = f' data-col="{col}" data-type="{"text" if _is_text(header, col) else "num"}"'
        if key is not None:
            meta = meta_all.get(key, {})
            attrs += (f' data-key="{_e(key)}" data-metric="{_e(meta.get("metric") or "")}"'
                      f' data-dir="{_e(meta.get("direction") or "info")}"')
            if meta.get("description"):
                attrs += f' title="{_e(meta["description"])}"'
        elif h in FIXED:
            attrs += f' title="{_e(FIXED[h])}"'
        head.append(f'<th scope="col"{attrs}><button type="button">{_e(h)}</button></th>')
    rows = []
    for i, row in enumerate(table["rows"]):
        cells = [f'<th scope="row">{_e(row[0])}</th>']
        for col, text in enumerate(row[1:], 1):
            if _is_text(header, col):
                cells.append(f'<td class="text">{_e(text)}</td>')
                continue
            value = sort_value(text)
            cls = "best" if text.endswith("*") else "failed" if text == "FAILED" else None
            attrs = (f' class="{cls}"' if cls else "") + ("" if value is None else f' data-v="{value!r}"')
            cells.append(f"<td{attrs}>{_e(text)}</td>")
        ref = ' data-ref=""' if row[0] in references else ""
        rows.append(f'<tr data-i="{i}"{ref}>' + "".join(cells) + "</tr>")
    # a table wider than the page scrolls inside its own box (focusable, so the keyboard scrolls it too)
    return (f'<div class="scroll" role="region" tabindex="0" aria-label="Table {index}">'
            f'<table class="lb" id="t{index}" data-table="{index}" data-track="{_e(track)}">'
            f"<caption>Table {index}: {_e(caption)}</caption>\n<thead><tr>{''.join(head)}</tr></thead>\n"
            "<tbody>\n" + "\n".join(rows) + "\n</tbody></table></div>")


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def plugin_docs(names: list[str]) -> dict[str, str]:
    """The first paragraph of each installed metric plugin's module docstring (the paper and formula);
    plugins not installed here, or without a docstring, are left out."""
    out: dict[str, str] = {}
    try:
        from dememo import plugins

        registry = plugins.get_registry()
    except Exception:  # noqa: BLE001 - the help panel is optional; the tables are not
        return out
    for name in names:
        try:
            cls = registry.get("metric", name)
        except Exception:  # noqa: BLE001
            continue
        module = sys.modules.get(cls.__module__)
        text = _first_paragraph(getattr(module, "__doc__", None))
        if text:
            out[name] = text
    return out


def _help(results: Mapping[str, Any], used: dict[str, list[str]]) -> str:
    parts = ['<section id="columns"><h2>Columns</h2>',
             '<p class="hint">Every column of the tables above; hover a header for its description.</p>',
             '<dl class="help">']
    for name, text in FIXED.items():
        parts.append(f"<dt>{_e(name)}</dt><dd>{_e(text[0].upper() + text[1:])}.</dd>")
    parts.append("</dl>")
    metrics: list[str] = []
    for track, keys in used.items():
        meta_all = (results.get("columns") or {}).get(track, {})
        parts.append(f"<h3>{_e(TRACK_NAMES.get(track, track))}</h3>\n<dl class=\"help\">")
        for key in keys:
            meta = meta_all.get(key, {})
            arrow, reading = DIRECTIONS.get(meta.get("direction") or "info", ("", str(meta.get("direction"))))
            if meta.get("direction") == "match" and meta.get("reference"):
                reading = f"closest to the reference row ({meta['reference']}) is better"
            metric = meta.get("metric")
            if metric and metric not in metrics:
                metrics.append(metric)
            unit = meta.get("unit") or "number"
            details = [f"Direction: {arrow + ' ' if arrow else ''}{reading}.",
                       f"Unit: {UNITS.get(unit, unit)}.",
                       f"Metric plugin: {metric}." if metric else "Metric plugin: not recorded."]
            if meta.get("cap") is not None:
                details.append(f"Capped: values above {meta['cap']:g} are shown as “> {meta['cap']:g}”.")
            if meta.get("wall_clock"):
                details.append("Wall-clock: depends on the machine.")
            description = (meta.get("description") or "").strip()
            if description:
                details.insert(0, description if description.endswith(".") else description + ".")
            parts.append(f'<dt id="col-{_e(track)}-{_e(key)}">{_e(meta.get("label") or key)}'
                         f"{' ' + arrow if arrow else ''} <code>{_e(key)}</code></dt><dd>{_e(' '.join(details))}</dd>")
        parts.append("</dl>")
    if metrics:
        info = {p.get("name"): p for p in results.get("plugins") or [] if p.get("family") == "metric"}
        docs = plugin_docs(sorted(metrics))
        parts.append("<h3>Metric plugins</h3>\n<dl class=\"help\">")
        for name in sorted(metrics):
            p = info.get(name, {})
            origin = (f" — {p['distribution']} {p.get('distribution_version') or ''}".rstrip()
                      + f", version {p['version']}" if p.get("distribution") and p.get("version") else "")
            text = [_inline(t) for t in (p.get("summary"), docs.get(name)) if t] or ["(not installed here)"]
            parts.append(f'<dt id="metric-{_e(name)}"><code>{_e(name)}</code>{_e(origin)}</dt><dd>{"<br>".join(text)}</dd>')
        parts.append("</dl>")
    parts.append("</section>")
    return "\n".join(parts)


@contextlib.contextmanager
def figure_cache(cache: FigureCache | None) -> Iterator[None]:
    """Within it, :func:`render_page` reads and stores its figures in ``cache``. A context rather than an
    argument: the page's signature (results only) stays what callers and their stand-ins know."""
    token = _CACHE.set(cache)
    try:
        yield
    finally:
        _CACHE.reset(token)


def _figures(results: Mapping[str, Any]) -> str:
    from dememo.board import report

    if os.environ.get("DEMEMO_HTML_PLOTS", "1").strip() == "0":
        return ('<section id="plots"><h2>Plots</h2><p>Left out (<code>DEMEMO_HTML_PLOTS=0</code>); '
                "<code>dememo-bench report</code> draws them.</p></section>")
    try:
        figs = report.figures(results)
    except Exception as exc:  # noqa: BLE001 - the tables stand without the plots
        return f'<section id="plots"><h2>Plots</h2><p>The plots could not be drawn: {_e(type(exc).__name__)}: {_e(exc)}</p></section>'
    if not figs:
        return ('<section id="plots"><h2>Plots</h2><p>These results have nothing to plot (no depth, residual-'
                "knowledge or interplay series and no attack-strength sweep).</p></section>")
    parts = ['<section id="plots"><h2>Plots</h2>']
    for i, f in enumerate(figs, 1):
        data = base64.b64encode(f.png(_CACHE.get())).decode("ascii")
        parts.append(f'<figure id="fig-{_e(f.name)}"><img src="data:image/png;base64,{data}" alt="{_e(f.title)}">'
                     f"<figcaption><b>Figure {i}: {_e(f.title)}.</b> {_e(f.caption)}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def render_page(results: Mapping[str, Any]) -> str:
    """The whole leaderboard as one self-contained HTML page (see the module docstring)."""
    from dememo.board import report

    suite = results.get("suite") or {}
    name = str(suite.get("name") or "unnamed")
    body = [f"<h1>dememo leaderboard — suite <code>{_e(name)}</code></h1>"]
    if suite.get("description"):
        body.append(f"<p>{_e(suite['description'])}</p>")
    partial = leaderboard.partial_note(results)  # type: ignore[arg-type]
    if partial:
        body.append(f'<p class="partial"><strong>{_e(partial)}</strong></p>')
    body.append(f'<p class="env">{_e(report._environment(results))}</p>')
    groups = sorted_groups(results)  # type: ignore[arg-type]
    nav = [f'<li><a href="#g{i}">{_e(title(t, d, f, cells))}</a></li>' for i, ((t, d, f), cells) in enumerate(groups)]
    nav += ['<li><a href="#columns">Columns</a></li>', '<li><a href="#plots">Plots</a></li>']
    body.append("<nav><ol>" + "".join(nav) + "</ol></nav>")
    body.append('<p class="hint">Click a column header to sort its table (again to reverse); n/a and FAILED go '
                "last, reference rows (tagged ref) stay on top. A link ending in <code>#sort=T,C</code> (or "
                "<code>#sort=T,C,desc</code>) opens the page with table T sorted by column C, both counted from 0.</p>")
    used: dict[str, list[str]] = {}
    index = 0
    for i, ((track, dataset, forget), cells) in enumerate(groups):
        meta_all = (results.get("columns") or {}).get(track, {})
        references = leaderboard.reference_rows(results, cells)  # type: ignore[arg-type]
        body.append(f'<section id="g{i}"><h2>{_e(title(track, dataset, forget, cells))}</h2>')
        for table in build_tables(results, cells):  # type: ignore[arg-type]
            keys = _header_keys(table, meta_all)
            for key in keys:
                if key is not None and key not in used.setdefault(track, []):
                    used[track].append(key)
            body.append(_table(index, table, keys, meta_all, references, track))
            index += 1
            if table.get("rule"):
                body.append(f'<p class="legend">{_e(table["rule"])}</p>')
            if table.get("notes"):
                body.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in table["notes"]) + "</ul>")
        body.append("</section>")
    if groups:
        body.append(f'<p class="legend">{_e(LEGEND)}</p>')
        note = tuning_note(results) if any(t != "unlearnability" for (t, _, _), _ in groups) else None  # type: ignore[arg-type]
        if note:
            body.append(f'<p class="legend">{_inline(note)}</p>')
    else:
        body.append("<p>No cells in these results.</p>")
    body.append(_help(results, used))
    body.append(_figures(results))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>dememo leaderboard — {_e(name)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n<script>\n{SCRIPT}\n</script>\n</body>\n</html>\n")
