"""``leaderboard.html``: one self-contained page with every leaderboard table, a column-help panel and the
figures, that sorts its tables in a real browser.

Pure checks (synthetic results in the results.json shape, built on test_leaderboard's: an unlearnability group
with a weight-noise table, an unlearning group with a failed unlearner, cells with n/a values): the page holds
exactly the tables ``build_tables`` makes, with the same header and cell texts (best markers included) in the
same order; header cells are ``<th scope="col">`` typed for sorting, reference rows are marked and every
number cell carries its sort value; the help panel defines every column that appears (label, metric plugin,
direction, unit, description) and quotes the first paragraph of an installed metric plugin's docstring; the
figures (including the new accuracy-under-weight-noise and forgetting-vs-utility plots) are inline
``data:image/png;base64`` images; nothing in the page refers to the network; rendering is byte-deterministic;
``dememo-bench`` writes the page next to leaderboard.md and a rendering error costs only the page.

Browser check: Debian's Chromium, headless, loads a copy of the page opened at the deep link
``#sort=0,<test acc>,desc;1,<weight-noise>`` with one test script appended that clicks a header of the
unlearning table twice (ascending, then descending); ``--dump-dom`` gives the DOM after the scripts ran, and the
test asserts each sorted table's rows: reference rows first in their order, then the others by their sort
value in the asked direction with n/a and FAILED last, the same rows as before, ``aria-sort`` on the sorted
header only; the tables and images are still there. Skips only where no Chromium is installed.

Measured: about 10 s for the file on one busy core (the end-to-end run about 5 s, Chromium about 2 s).
"""

from __future__ import annotations

import copy
import html
import os
import re
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support.board import FAILED, WN, cells_for
from support.board import results as board_results

from dememo import cli
from dememo.board import report
from dememo.board.html import render_page, sort_value
from dememo.board.leaderboard import LEGEND, build_tables, sorted_groups
from dememo.results import load_results

METRICS = {("unlearnability", "test_acc"): "clean-accuracy", ("unlearnability", "train_acc"): "clean-accuracy",
           ("unlearnability", "peak_epoch"): "peak-accuracy", ("unlearning", "forget_acc"): "unlearning-accuracy",
           ("unlearning", "test_acc"): "unlearning-accuracy", ("unlearning", "runtime"): "run-time"}
MORE_UNLEARNABILITY = {
    ("tap", "none"): {"test_acc": [0.15, 0.17], "train_acc": [0.99, 0.99], "peak_epoch": [2, 2]},
    ("ops", "none"): {"train_acc": [0.95, 0.93], "peak_epoch": [1, 1]},  # no test accuracy: n/a
    ("tap", WN): {"test_acc": [0.30, 0.35]},
    ("ops", WN): {"test_acc": [0.55, 0.45]},
}
MORE_UNLEARNING = {
    ("salun", "none"): {"forget_acc": [0.82, 0.84], "test_acc": [0.95, 0.95], "runtime": [2.0, 2.0]},
    ("scrub", "none"): {"forget_acc": [0.90, 0.90], "runtime": [4.0, 4.0]},  # no test accuracy: n/a
}


def synthetic() -> dict:
    data = copy.deepcopy(board_results(cells_for("unlearnability", MORE_UNLEARNABILITY, None)
                                       + cells_for("unlearning", MORE_UNLEARNING, "random-10%") + FAILED))
    for (track, key), metric in METRICS.items():
        meta = data["columns"][track][key]
        meta.update(metric=metric, description=f"what {key} means on the {track} track: mean |x − y| < 1 & “so on”")
    for c in data["cells"]:
        name = c["attack"].split("(")[0]
        c["params"]["attack"] = {"name": name, "version": "1", "params": {"sigma": 0.03} if name == "weight-noise" else {}}
        c["poisoner" if c["track"] == "unlearnability" else "unlearner"] = c["method"]
    data["suite"]["description"] = "synthetic results for the page tests"
    data["environment"] = {"dememo": "0.1.0", "python": "3.11.7", "torch": "2.14.1", "device": "cpu", "wall_seconds": 3.0}
    return data


class Dom(HTMLParser):
    """The page's tables (header cells and rows with attributes and texts), help entries and images."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self.entries: list[tuple[str, dict, str]] = []  # (tag, attrs, text) of dt, dd, figcaption
        self.images: list[dict] = []
        self._table = self._row = self._cell = self._entry = None
        self._part = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = {"attrs": a, "head": [], "rows": [], "caption": ""}
            self.tables.append(self._table)
        elif tag in ("thead", "tbody", "caption"):
            self._part = tag
        elif tag == "tr" and self._table is not None:
            self._row = {"attrs": a, "cells": []}
        elif tag in ("th", "td") and self._row is not None:
            self._cell = {"tag": tag, "attrs": a, "text": ""}
        elif tag in ("dt", "dd", "figcaption"):
            self._entry = (tag, a, [])
        elif tag == "img":
            self.images.append(a)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        elif self._part == "caption" and self._table is not None:
            self._table["caption"] += data
        if self._entry is not None:
            self._entry[2].append(data)

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self._row["cells"].append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._part == "thead":
                self._table["head"] = self._row["cells"]
            else:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "caption":
            self._part = None
        elif tag == "table":
            self._table = None
        elif tag in ("dt", "dd", "figcaption") and self._entry is not None:
            self.entries.append((self._entry[0], self._entry[1], " ".join("".join(self._entry[2]).split())))
            self._entry = None


def texts(row: dict) -> list[str]:
    return [c["text"] for c in row["cells"]]


@pytest.fixture(scope="module")
def data() -> dict:
    return synthetic()


@pytest.fixture(scope="module", autouse=True)
def plots_on():
    """conftest leaves the plots out of end-to-end runs; the pages of this module have them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEMEMO_HTML_PLOTS", "1")
        yield


@pytest.fixture(scope="module")
def page(data) -> str:
    return render_page(data)


@pytest.fixture(scope="module")
def dom(page) -> Dom:
    return Dom(page)


def expected_tables(data) -> list[dict]:
    return [t for _, cells in sorted_groups(data) for t in build_tables(data, cells)]


# -- the page (pure) --------------------------------------------------------------------------------


def test_every_table_with_build_tables_texts(data, page, dom):
    expected = expected_tables(data)
    assert len(expected) == 3 and page.count("<table") == len(expected) == len(dom.tables)
    for i, (want, got) in enumerate(zip(expected, dom.tables)):
        assert got["attrs"]["id"] == f"t{i}" and got["attrs"]["class"] == "lb"
        assert [c["text"] for c in got["head"]] == want["header"]
        assert [texts(r) for r in got["rows"]] == want["rows"]  # the same numbers and * markers, in order
        if want["caption"]:
            assert want["caption"] in got["caption"]
    assert any(cell.endswith("*") for t in expected for row in t["rows"] for cell in row)
    assert any("FAILED" in texts(r) for r in dom.tables[2]["rows"])
    assert "FAILED neggrad-plus @none (2 cells): [unlearn] loss became NaN at step 3" in html.unescape(page)
    assert LEGEND in html.unescape(page) and "torch 2.14.1" in page


def test_header_and_rows_are_marked_for_sorting(data, dom):
    for table in dom.tables:
        for col, th in enumerate(table["head"]):
            assert th["tag"] == "th" and th["attrs"]["scope"] == "col" and th["attrs"]["data-col"] == str(col)
            assert th["attrs"]["data-type"] == ("text" if th["text"] in ("method", "params") else "num")
            assert "aria-sort" not in th["attrs"]  # set by the script once sorted
        for row in table["rows"]:
            assert row["cells"][0]["tag"] == "th" and row["cells"][0]["attrs"]["scope"] == "row"
            for cell in row["cells"][1:]:
                value = sort_value(cell["text"])
                if cell["attrs"].get("class") == "text":
                    continue
                assert ("data-v" in cell["attrs"]) == (value is not None)
                if value is not None:
                    assert float(cell["attrs"]["data-v"]) == value
    refs = {texts(r)[0] for t in dom.tables for r in t["rows"] if "data-ref" in r["attrs"]}
    assert refs == {"none", "original", "retrain"}
    keys = {th["attrs"].get("data-key") for th in dom.tables[1]["head"][1:-1] if th["text"] != "rank ↓"}
    assert keys == {"test_acc"}  # the weight-noise table: every attack column is the headline column


def test_sort_value_reads_the_mean():
    assert sort_value("25.0 ± 7.1*") == 25.0 and sort_value("-3.5 ± 0.1") == -3.5 and sort_value("2") == 2.0
    assert sort_value("n/a") is None and sort_value("FAILED") is None and sort_value("ref") is None
    assert 4.0 < sort_value("> 4") < 4.0001 and sort_value("1e-05") == 1e-05


def test_help_panel_defines_every_column(data, dom):
    entries = {a.get("id"): text for tag, a, text in dom.entries if tag == "dt" and a.get("id")}
    following = {}
    for (tag, a, _), nxt in zip(dom.entries, dom.entries[1:]):
        if tag == "dt" and a.get("id"):
            following[a["id"]] = nxt[2]
    shown = {(t["attrs"]["data-track"], th["attrs"]["data-key"]) for t in dom.tables for th in t["head"]
             if th["attrs"].get("data-key")}
    assert shown == {("unlearnability", "test_acc"), ("unlearnability", "train_acc"), ("unlearnability", "peak_epoch"),
                     ("unlearning", "forget_acc"), ("unlearning", "test_acc"), ("unlearning", "runtime")}
    for track, key in shown:
        meta = data["columns"][track][key]
        dt = entries[f"col-{track}-{key}"]
        assert meta["label"] in dt and key in dt
        assert meta["description"] in following[f"col-{track}-{key}"]
        assert f"Metric plugin: {meta['metric']}." in following[f"col-{track}-{key}"]
        assert {"higher": "↑", "lower": "↓", "match": "≈", "info": "information only"}[meta["direction"]] in \
            dt + following[f"col-{track}-{key}"]
    assert "Unit: fraction, shown in %." in following["col-unlearning-forget_acc"]
    assert "closest to the reference row (retrain)" in following["col-unlearning-forget_acc"]
    # the installed metric plugin's docstring: its first paragraph (paper and formula)
    from dememo_plugins.metrics import peak_accuracy

    first = " ".join(peak_accuracy.__doc__.strip().split("\n\n")[0].replace("``", "").split())
    assert first in following["metric-peak-accuracy"]


def test_figures_are_inline_images(data, page, dom):
    names = [f.name for f in report.figures(data)]
    assert "weight-noise_unlearnability_digits" in names and "forgetting-utility_unlearning_digits_random-10pct" in names
    assert len(dom.images) == len(names) == page.count("data:image/png;base64,")
    assert all(img["src"].startswith("data:image/png;base64,") and img["alt"] for img in dom.images)
    captions = [text for tag, _, text in dom.entries if tag == "figcaption"]
    assert any("under weight noise" in c for c in captions) and any("forgetting vs utility" in c for c in captions)


def test_no_network_reference_and_deterministic(data, page):
    for bad in ("http://", "https://", "<script src", "<link", "@import", "url(", "<iframe"):
        assert bad not in page
    assert re.findall(r"<script[^>]*>", page) == ["<script>"]
    assert render_page(synthetic()) == page
    tricky = synthetic()
    tricky["suite"]["description"] = "see https://example.org/x"
    assert "https://" not in render_page(tricky) and "https:&#47;&#47;example.org" in render_page(tricky)


def test_plots_can_be_left_out(data, monkeypatch):
    monkeypatch.setenv("DEMEMO_HTML_PLOTS", "0")
    page = render_page(data)
    assert "data:image" not in page and page.count("<table") == 3 and "DEMEMO_HTML_PLOTS=0" in page


# -- the command line writes it -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_writes_the_page_and_survives_a_rendering_error(tiny_suite, tmp_path, monkeypatch, capsys):
    args = ["--suite", str(tiny_suite), "--poisoner", "random-noise", "--unlearner", "finetune", "--attack", "weight-noise",
            "--metric", "clean-accuracy", "--metric", "unlearning-accuracy", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    monkeypatch.setenv("DEMEMO_HTML_PLOTS", "0")
    assert cli.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "leaderboard.html" in capsys.readouterr().err
    page = (tmp_path / "a" / "leaderboard.html").read_text()
    data = load_results(tmp_path / "a")
    assert page.count("<table") == len(expected_tables(data)) > 3

    from dememo.board import html as leaderboard_html

    def broken(results):
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(leaderboard_html, "render_page", broken)
    assert cli.main([*args, "--out", str(tmp_path / "b")]) == 0  # the run's own code, from the cache
    err = capsys.readouterr().err
    assert "dememo-bench: warning: leaderboard.html not written (ValueError: boom second line)" in err
    assert not (tmp_path / "b" / "leaderboard.html").exists()
    for name in ("results.json", "leaderboard.md", "leaderboard.csv", "leaderboard.json"):
        assert (tmp_path / "b" / name).is_file()


# -- in a browser -----------------------------------------------------------------------------------

CLICKS = """<script>
(function () {
  var button = document.querySelector("#t2 thead th[data-col='%d'] button");
  button.click();
  button.click();
})();
</script>
</body>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no Chromium installed: apt-get install chromium (the CI script installs it)")
    return found


def dump_dom(browser: str, url: str, profile: Path) -> str:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
               "--disable-extensions", f"--user-data-dir={profile}", "--dump-dom", url]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the browser and its helper processes: its own session
        proc.communicate()
        pytest.fail("Chromium did not finish within 60 s")
    assert proc.returncode == 0 and "<table" in out, err[-2000:]
    return out


def column(table: dict, header: str) -> int:
    return next(i for i, th in enumerate(table["head"]) if th["text"] == header)


def check_sorted(before: dict, after: dict, col: int, descending: bool) -> None:
    assert sorted(map(tuple, map(texts, after["rows"]))) == sorted(map(tuple, map(texts, before["rows"])))
    refs = [texts(r) for r in before["rows"] if "data-ref" in r["attrs"]]
    assert [texts(r) for r in after["rows"][:len(refs)]] == refs  # reference rows pinned on top, in their order
    rest = after["rows"][len(refs):]
    assert not any("data-ref" in r["attrs"] for r in rest)
    values = [r["cells"][col]["attrs"].get("data-v") for r in rest]
    present = [float(v) for v in values if v is not None]
    assert values[:len(present)] == [v for v in values if v is not None]  # n/a and FAILED last
    assert present == sorted(present, reverse=descending) and len(present) >= 3
    sorts = {i: th["attrs"].get("aria-sort") for i, th in enumerate(after["head"]) if th["attrs"].get("aria-sort")}
    assert sorts == {col: "descending" if descending else "ascending"}


def test_sorting_in_headless_chromium(page, dom, tmp_path):
    browser = chromium()
    first = column(dom.tables[0], "test acc ↓")
    noise = column(dom.tables[1], WN)
    clicked = column(dom.tables[2], "test acc ↑")
    assert any(texts(r)[clicked] in ("n/a", "FAILED") for r in dom.tables[2]["rows"])
    path = tmp_path / "leaderboard.html"
    path.write_text(page.replace("</body>", CLICKS % clicked), encoding="utf-8")
    out = dump_dom(browser, f"{path.as_uri()}#sort=0,{first},desc;1,{noise}", tmp_path / "profile")
    after = Dom(out)
    assert len(after.tables) == len(dom.tables) and len(after.images) == len(dom.images) >= 2
    assert all(img["src"].startswith("data:image/png;base64,") for img in after.images)
    check_sorted(dom.tables[0], after.tables[0], first, descending=True)  # the deep link, descending
    check_sorted(dom.tables[1], after.tables[1], noise, descending=False)  # the deep link, ascending
    check_sorted(dom.tables[2], after.tables[2], clicked, descending=True)  # two clicks: ascending, then descending
    assert [texts(r)[0] for r in after.tables[2]["rows"]][:3] == ["original", "retrain", "salun"]
    assert texts(after.tables[2]["rows"][-1])[0] in ("neggrad-plus", "scrub")



MEASURE = """<script>
(function () {
  var page = document.scrollingElement;
  var boxes = Array.prototype.slice.call(document.querySelectorAll(".scroll"));
  document.body.setAttribute("data-page-overflow", String(page.scrollWidth - window.innerWidth));
  document.body.setAttribute("data-scrolling-tables", String(boxes.filter(function (b) {
    return b.scrollWidth > b.clientWidth && getComputedStyle(b).overflowX === "auto"; }).length));
  document.body.setAttribute("data-boxes", String(boxes.length));
})();
</script>
</body>"""


def test_wide_tables_scroll_in_their_own_box_in_a_narrow_window(page, dom, tmp_path):
    """A 480-pixel window: the page itself never scrolls sideways; the tables wider than it scroll inside
    their own box, and every table has one."""
    browser = chromium()
    path = tmp_path / "leaderboard.html"
    path.write_text(page.replace("</body>", MEASURE), encoding="utf-8")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=480,800",
               "--dump-dom", path.as_uri()]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, start_new_session=True).stdout
    found = dict(re.findall(r'data-(page-overflow|scrolling-tables|boxes)="(-?\d+)"', out))
    assert int(found["boxes"]) == len(dom.tables)
    assert int(found["page-overflow"]) <= 0
    assert int(found["scrolling-tables"]) >= 1
