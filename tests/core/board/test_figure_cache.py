"""The figure cache of a run's leaderboard.html (``OUT/.figures``): re-writing the same results draws nothing.

Synthetic results (test_leaderboard's, with the weight-noise attack's σ and the unlearners named, so that the
installed plugins declare a weight-noise sweep and a forgetting-vs-utility scatter plot) are written with
:func:`dememo.board.writer.write_outputs`, counting the renders (``Figure._render`` monkeypatched). Checked:
the second write renders nothing and gives a byte-identical page; changing one number changes the key of
exactly the figure that plots it; a corrupt cache file is rendered again and replaced; stale files go after a
complete write; in-memory renders (no cache) still draw; and, in a fresh interpreter, a fully cached write
never imports matplotlib.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dememo.board import report, writer
from dememo.board.html import render_page

from support.board import cells_for
from support.board import results as board_results

MORE_UNLEARNING = {
    ("salun", "none"): {"forget_acc": [0.82, 0.84], "test_acc": [0.95, 0.95], "runtime": [2.0, 2.0]},
}


def synthetic() -> dict:
    """Results with a weight-noise sweep (unlearnability) and a forgetting-vs-utility plot (unlearning)."""
    data = copy.deepcopy(board_results(cells_for("unlearning", MORE_UNLEARNING, "random-10%")))
    for c in data["cells"]:
        name = c["attack"].split("(")[0]
        c["params"]["attack"] = {"name": name, "version": "1", "params": {"sigma": 0.03} if name == "weight-noise" else {}}
        c["poisoner" if c["track"] == "unlearnability" else "unlearner"] = c["method"]
    return data


@pytest.fixture(autouse=True)
def plots_on(monkeypatch):
    monkeypatch.setenv("DEMEMO_HTML_PLOTS", "1")


@pytest.fixture
def renders(monkeypatch) -> list[tuple[str, str]]:
    """(figure name, format) of every render, in order."""
    calls: list[tuple[str, str]] = []
    real = report.Figure._render

    def counting(self, fmt):
        calls.append((self.name, fmt))
        return real(self, fmt)

    monkeypatch.setattr(report.Figure, "_render", counting)
    return calls


def cached(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / writer.FIGURE_DIR).iterdir())}


def keys(data: dict) -> dict[str, str]:
    return {f.name: f.key("png") for f in report.figures(data)}


def test_a_second_write_renders_nothing_and_gives_the_same_page(tmp_path, renders):
    data = synthetic()
    writer.write_outputs(tmp_path, data, "t")
    names = [f.name for f in report.figures(data)]
    assert len(names) >= 2 and sorted(renders) == sorted((n, "png") for n in names)  # each figure once
    page, files = (tmp_path / "leaderboard.html").read_bytes(), cached(tmp_path)
    assert sorted(files) == sorted(f"{k}.png" for k in keys(data).values())

    renders.clear()
    writer.write_outputs(tmp_path, copy.deepcopy(data), "t")
    assert renders == []
    assert (tmp_path / "leaderboard.html").read_bytes() == page and cached(tmp_path) == files
    assert render_page(data).encode() == page  # the same bytes as drawing without a cache


def test_a_changed_number_changes_the_key_of_its_figure_only():
    data = synthetic()
    before = keys(data)
    changed = copy.deepcopy(data)
    cell = next(c for c in changed["cells"] if c["method"] == "salun" and c["seed"] == 0)
    cell["metrics"]["test_acc"] = 0.5  # the forgetting-vs-utility plot's y
    after = keys(changed)
    assert set(after) == set(before) and all(before.values())
    assert {n for n in before if before[n] != after[n]} == {"forgetting-utility_unlearning_digits_random-10pct"}
    assert keys(synthetic()) == before  # the key is a function of the data


def test_a_key_covers_format_code_and_matplotlib(monkeypatch):
    fig = report.figures(synthetic())[0]
    base = fig.key("png")
    assert len(base) == 64 and fig.key("svg") != base
    monkeypatch.setattr(report, "FIGURE_VERSION", report.FIGURE_VERSION + 1)
    assert fig.key("png") != base
    monkeypatch.undo()
    monkeypatch.setattr(report, "_source", lambda: "edited drawing code")
    assert fig.key("png") != base
    monkeypatch.undo()
    monkeypatch.setattr(report, "_matplotlib_version", lambda: "0.0")
    assert fig.key("png") != base
    monkeypatch.undo()
    assert fig.key("png") == base


@pytest.mark.parametrize("damage", ["flip", "truncate", "swap", "directory"])
def test_a_corrupt_cache_file_is_rendered_again_and_replaced(tmp_path, renders, damage):
    data = synthetic()
    writer.write_outputs(tmp_path, data, "t")
    page, files = (tmp_path / "leaderboard.html").read_bytes(), cached(tmp_path)
    first, second = sorted(files)[:2]
    path = tmp_path / writer.FIGURE_DIR / first
    if damage == "flip":  # one bit of the image
        raw = bytearray(files[first])
        raw[-10] ^= 1
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(files[first][:len(files[first]) // 2])
    elif damage == "swap":  # a valid file, under another figure's key
        path.write_bytes(files[second])
    else:  # unreadable
        path.unlink()
        path.mkdir()

    renders.clear()
    writer.write_outputs(tmp_path, data, "t")
    assert len(renders) == 1  # that figure only
    assert (tmp_path / "leaderboard.html").read_bytes() == page
    if damage == "directory":  # cannot be replaced: rendered, not cached, and no crash
        assert path.is_dir()
    else:
        assert cached(tmp_path) == files


def test_a_complete_write_removes_figures_no_longer_shown(tmp_path, renders):
    data = synthetic()
    writer.write_outputs(tmp_path, data, "t")
    old = cached(tmp_path)
    other = tmp_path / writer.FIGURE_DIR / "notes.txt"  # not a cache file: left alone
    other.write_text("mine")
    changed = copy.deepcopy(data)
    next(c for c in changed["cells"] if c["method"] == "salun")["metrics"]["test_acc"] = 0.5
    renders.clear()
    writer.write_outputs(tmp_path, changed, "t")
    assert len(renders) == 1
    now = cached(tmp_path)
    assert sorted(now) == sorted([f"{k}.png" for k in keys(changed).values()] + ["notes.txt"])
    assert len(set(old) - set(now)) == 1


def test_without_plots_or_a_cache_nothing_is_cached(tmp_path, monkeypatch, renders):
    data = synthetic()
    render_page(data)  # in memory: drawn, no cache
    assert len(renders) == len(report.figures(data))
    monkeypatch.setenv("DEMEMO_HTML_PLOTS", "0")
    writer.write_outputs(tmp_path, data, "t")
    assert "DEMEMO_HTML_PLOTS=0" in (tmp_path / "leaderboard.html").read_text()
    assert not (tmp_path / writer.FIGURE_DIR).exists()


def test_a_fully_cached_write_does_not_import_matplotlib(tmp_path):
    (tmp_path / "data.json").write_text(json.dumps(synthetic()))
    code = ("import json, sys; from pathlib import Path; from dememo.board import writer; "
            f"out = Path({str(tmp_path / 'out')!r}); "
            f"writer.write_outputs(out, json.loads(Path({str(tmp_path / 'data.json')!r}).read_text()), 't'); "
            "print('matplotlib' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "DEMEMO_HTML_PLOTS"}
    runs = [subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                           timeout=300, env=env)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    assert [r.stdout.strip() for r in runs] == ["True", "False"]  # the first write draws, the second reads
    assert "data:image/png;base64," in (tmp_path / "out" / "leaderboard.html").read_text()
