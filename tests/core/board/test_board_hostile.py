"""Hostile bundles and the board (issue 18): no bundle can change another entry's numbers.

One narrowed tiny-suite run made with ``--set finetune.epochs=2`` supplies the genuine first-party bundle
(distribution ``dememo``); third-party and hostile bundles are made from it by
``tests/qa/faults.py`` (renamed plugins, forged values with recomputed hashes, markup in labels). The
board build re-runs nothing unless asked, so most tests take well under a second each; the run and the two
real re-runs take about half a minute on 2 shared CPU cores.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import random
import re
from pathlib import Path

import pytest
from support import TINY_SUITE, bench
from qa import faults

from dememo.board import submission
from dememo.board.bundle import _is_reference, _slot, _table
from dememo.board.verify import _recorded_sets
from dememo.cli import main
from dememo.errors import UserError
from dememo.hashing import digest
from dememo.results.record import CellRecord

SET = ["--set", "finetune.epochs=2"]
NARROW = ["--poisoner", "none", "--poisoner", "random-noise", "--unlearner", "finetune",
          "--metric", "clean-accuracy", "--metric", "unlearning-accuracy", "--attack", "none"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("hostile")
    (base / "tiny.toml").write_text(TINY_SUITE)
    proc = bench("--all", "--suite", str(base / "tiny.toml"), *NARROW, *SET, "--out", str(base / "out"),
                 "--cache-dir", str(base / "cache"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    code, _, err = cli("submit", "--results", str(base / "out"), "--name", "First party", "--plugin", "dememo",
                       "--out", str(base / "dememo.json"))
    assert code == 0, err
    b = submission.load_bundle(base / "dememo.json")
    return {"base": base, "path": base / "dememo.json", "bundle": b,
            "third": faults.third_party(b, "dememo-plugin-mine", "mine-", name="Mine")}


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def entries(tmp_path: Path, name: str, files: dict[str, dict]) -> Path:
    d = tmp_path / name
    d.mkdir()
    for fname, b in files.items():
        submission.write_bundle(b, d / fname)
    return d


def board_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def by_slot(out: Path) -> dict[tuple, dict]:
    return {_slot(c): c for c in json.loads((out / "results.json").read_text())["cells"]}


def forged_copy(b: dict, seed: int = 0, n: int = 6) -> dict:
    forged = copy.deepcopy(b)
    assert faults.tamper(forged, random.Random(seed), n) > 0
    return faults.rehash(forged)


# -- item 1: ownership, conflicts, order ---------------------------------------------------------------


def test_forged_first_party_copy_is_held_back_with_the_genuine_whatever_the_file_names(run, tmp_path):
    g, third = run["bundle"], run["third"]
    forged = forged_copy(g)
    outs = {}
    for label, fname in [("first", "0000-dememo.json"), ("last", "zzzz-dememo.json")]:
        d = entries(tmp_path, f"entries-{label}", {"dememo.json": g, "mine.json": third, fname: forged})
        board = submission.build_board(d, tmp_path / f"board-{label}")
        refused = dict(board.refused)
        assert [e["file"] for e in board.accepted] == ["mine.json"]
        for f in ("dememo.json", fname):  # both held back, each message naming both files
            assert refused[f].startswith("held back: ") and "dememo.json" in refused[f] and fname in refused[f]
            assert "both are distribution 'dememo'" in refused[f] and "row(s) as their own" in refused[f]
        assert not set(map(_slot, submission.own_cells(g))) & set(by_slot(tmp_path / f"board-{label}"))
        outs[label] = board_files(tmp_path / f"board-{label}")
    assert outs["first"] == outs["last"]  # the forged file's name decides nothing
    code, stdout, _ = cli("leaderboard", "build", str(tmp_path / "entries-first"), "--out", str(tmp_path / "cli"))
    assert code == 1 and "refused 0000-dememo.json: held back: 0000-dememo.json and dememo.json conflict" in stdout


def test_genuine_and_third_party_merge_in_any_file_order(run, tmp_path):
    g, third = run["bundle"], run["third"]
    outs = []
    for i, (a, b) in enumerate([("a.json", "b.json"), ("b.json", "a.json")]):
        d = entries(tmp_path, f"e{i}", {a: g, b: third})
        board = submission.build_board(d, tmp_path / f"o{i}")
        assert sorted(e["name"] for e in board.accepted) == ["First party", "Mine"] and not board.refused
        merged = json.loads((tmp_path / f"o{i}" / "results.json").read_text())
        outs.append((merged["cells"], (tmp_path / f"o{i}" / "leaderboard.csv").read_text()))
    assert outs[0] == outs[1]
    cells = by_slot(tmp_path / "o0")
    own = {_slot(c): c for c in submission.own_cells(g)}
    assert all(cells[s]["key"] == c["key"] and cells[s]["metrics"] == c["metrics"] for s, c in own.items())
    assert {c["entry"] for s, c in cells.items() if s in own} == {"First party"}  # references stay the owner's


def test_a_claim_on_an_installed_plugin_is_refused_alone_and_others_hold_both_back(run, tmp_path):
    g, claims = run["bundle"], copy.deepcopy(run["third"])
    claims["plugins"].append({"family": "unlearner", "name": "finetune", "version": "1"})
    d = entries(tmp_path, "e", {"dememo.json": g, "z-claims.json": faults.rehash(claims)})
    board = submission.build_board(d, tmp_path / "board")  # the installed plugins settle who provides finetune
    assert [e["file"] for e in board.accepted] == ["dememo.json"]
    assert dict(board.refused)["z-claims.json"].startswith("claims unlearner 'finetune' as dememo-plugin-mine 0.1's, "
                                                            "but the board's installed unlearner 'finetune' is dememo")
    # two third-party bundles that claim one plugin installed nowhere here: neither is believed
    other = faults.third_party(g, "dememo-plugin-other", "other-", name="Other")
    other["plugins"] += run["third"]["plugins"]
    d = entries(tmp_path, "two", {"dememo.json": g, "mine.json": run["third"], "z-other.json": faults.rehash(other)})
    board = submission.build_board(d, tmp_path / "board-two")
    refused = dict(board.refused)
    assert [e["file"] for e in board.accepted] == ["dememo.json"]
    assert "held back: mine.json and z-other.json conflict (both claim 1 plugin(s), e.g. unlearner 'mine-" in refused["mine.json"]
    assert refused["mine.json"] == refused["z-other.json"]


def test_rows_of_plugins_a_bundle_does_not_provide_are_refused(run, tmp_path):
    g, foreign = run["bundle"], copy.deepcopy(run["third"])
    stolen = copy.deepcopy(next(c for c in g["cells"] if c["status"] == "ok" and (c.get("poisoner") or "").startswith("random-noise")))
    stolen["metrics"] = {k: 0.0 for k in stolen["metrics"]}  # a "better" random-noise row, under another name
    foreign["cells"].append(stolen)  # with the reference rows of its table, so that only ownership is wrong
    foreign["cells"] += [copy.deepcopy(c) for c in g["cells"] if _table(c) == _table(stolen)
                         and _is_reference(c, g["suite"]["references"])]
    foreign["columns"] = g["columns"]
    d = entries(tmp_path, "e", {"a-foreign.json": faults.rehash(foreign), "dememo.json": g})
    board = submission.build_board(d, tmp_path / "board")
    assert [e["file"] for e in board.accepted] == ["dememo.json"]
    reason = dict(board.refused)["a-foreign.json"]
    assert "carries 1 rows of plugins dememo-plugin-mine does not list under `plugins`, e.g. random-noise" in reason
    assert by_slot(tmp_path / "board")[_slot(stolen)]["metrics"] != stolen["metrics"]


def test_third_party_reference_copies_are_context_never_merged(run, tmp_path):
    g, third = run["bundle"], copy.deepcopy(run["third"])
    changed = [c for c in third["cells"] if not submission.is_own(c, submission.claimed_plugins(third))]
    assert changed  # the retrain/original rows of its tables
    for c in changed:
        c["metrics"] = {k: (0.5 if v is not None else v) for k, v in c["metrics"].items()}
    d = entries(tmp_path, "e", {"0-mine.json": faults.rehash(third), "dememo.json": g})
    board = submission.build_board(d, tmp_path / "board")
    assert len(board.accepted) == 2 and not board.refused
    cells = by_slot(tmp_path / "board")
    genuine = {_slot(c): c for c in g["cells"]}
    assert all(cells[_slot(c)]["metrics"] == genuine[_slot(c)]["metrics"] for c in changed)
    note = next(n for n in board.notes if n.startswith("0-mine.json: "))
    assert f"{len(changed)} of its copies of reference rows differ beyond tolerance" in note
    assert "the board shows the provider's copies" in note
    # without the provider of the reference plugins, a third party's copies are not shown either
    alone = entries(tmp_path, "alone", {"mine.json": third})
    board = submission.build_board(alone, tmp_path / "board-alone")
    assert not set(map(_slot, changed)) & set(by_slot(tmp_path / "board-alone"))
    assert any("reference rows have no copy from an accepted entry" in n for n in board.notes)


def test_same_name_same_content_and_redefined_columns_conflict(run, tmp_path):
    g = run["bundle"]
    named = copy.deepcopy(run["third"])
    named["name"] = "Ｆirst PARTY"  # NFKC and case folded, the genuine entry's name
    flipped = copy.deepcopy(run["third"])
    col = flipped["columns"]["unlearning"]["test_acc"]
    col["direction"] = "lower" if col.get("direction") == "higher" else "higher"
    # same content: both are the installed distribution, so neither is believed over the other
    d = entries(tmp_path, "same", {"dememo.json": g, "y.json": copy.deepcopy(g), "mine2.json": faults.third_party(g, "d2", "two-")})
    board = submission.build_board(d, tmp_path / "board-same")
    refused = dict(board.refused)
    assert "same content" in refused["dememo.json"] and "same content" in refused["y.json"] and "y.json" in refused["dememo.json"]
    assert [e["file"] for e in board.accepted] == ["mine2.json"]
    # a third party that takes the installed entry's name or redefines its column is held back alone: the
    # distribution installed where the board is built is the trust anchor
    for fname, other, says in [("x.json", faults.rehash(named), "both are named 'First party'"),
                               ("z.json", faults.rehash(flipped), "they define column unlearning/test_acc differently")]:
        d = entries(tmp_path, fname, {"dememo.json": g, fname: other})
        board = submission.build_board(d, tmp_path / f"board-{fname}")
        assert [e["file"] for e in board.accepted] == ["dememo.json"]
        assert dict(board.refused)[fname] == (f"held back: {fname} conflicts with dememo.json ({says}), whose distribution "
                                              "dememo 0.1.0 is installed where the board is built and is kept")
    # between two third parties, neither installed, a conflict holds both back
    d = entries(tmp_path, "thirds", {"mine.json": run["third"], "z.json": faults.rehash(flipped)})
    with pytest.raises(UserError, match=r"mine.json: held back: mine.json and z.json conflict \(both are named 'Mine'; .*they define "):
        submission.build_board(d, tmp_path / "board-thirds")


def test_verify_rerun_draws_only_the_bundles_own_rows(run):
    b = copy.deepcopy(run["third"])
    b["cells"] += [copy.deepcopy(c) for c in run["bundle"]["cells"] if (c.get("unlearner") or "").startswith("finetune")]
    faults.rehash(b)
    own = {c["key"] for c in submission.own_cells(b)}
    assert own and all(c["unlearner"].startswith("mine-") for c in submission.own_cells(b))
    for seed in range(40):
        assert {c["key"] for c in submission.pick_cells(b, 2, seed)} <= own
    none_own = copy.deepcopy(run["third"])
    none_own["cells"] = [c for c in none_own["cells"] if c["key"] not in own]
    checks = submission.rerun_checks(faults.rehash(none_own), 1, seed=0,
                                     runner_factory=lambda *a: pytest.fail("nothing may run"))
    assert [(c.name, c.ok) for c in checks] == [("rerun", False)] and "no finished cell of" in checks[0].detail


class Replay:
    """A runner that returns the genuine bundle's numbers for a cell: what an honest re-run computes."""

    def __init__(self, genuine: dict):
        self.cells = {c["key"]: c for c in genuine["cells"]}

    def __call__(self, planner, cache_dir):
        return self

    def run_cell(self, cell):
        return CellRecord.from_json(copy.deepcopy(self.cells[cell.key]))


def test_leaderboard_build_rerun_holds_back_a_new_entry_that_fails(run, tmp_path):
    g = run["bundle"]
    forged = copy.deepcopy(g)
    for c in forged["cells"]:  # every fraction value changed: whichever cell is drawn, its re-run differs
        c["metrics"] = {k: (round(1 - v, 6) if isinstance(v, float) and 0 <= v <= 1 else v) for k, v in c["metrics"].items()}
    faults.rehash(forged)
    d = entries(tmp_path, "e", {"dememo.json": forged})
    with pytest.raises(UserError, match=r"no acceptable bundle .*dememo.json: held back: 1 of 1 re-run cells failed "
                                         r"\(--rerun-seed 3\): .*recomputed values differ"):
        submission.build_board(d, tmp_path / "board", rerun=1, rerun_seed=3, runner_factory=Replay(g))
    d = entries(tmp_path, "ok", {"dememo.json": g})
    board = submission.build_board(d, tmp_path / "board", rerun=2, rerun_seed=3, runner_factory=Replay(g))
    assert [e["file"] for e in board.accepted] == ["dememo.json"] and len(board.reruns) == 2
    assert all(c.ok and "--rerun-seed 3" in c.detail for _, c in board.reruns)
    # a rebuild re-runs only what the previous board does not record as re-run with at least K cells
    board = submission.build_board(d, tmp_path / "board", rerun=2, runner_factory=lambda *a: pytest.fail("no re-run"))
    assert not board.reruns and any("already re-run on the board" in n for n in board.notes)


def test_leaderboard_build_rerun_cli_prints_the_cells(run, tmp_path):
    d = entries(tmp_path, "e", {"dememo.json": run["bundle"]})
    code, stdout, stderr = cli("leaderboard", "build", str(d), "--out", str(tmp_path / "board"), "--rerun", "1",
                               "--rerun-seed", "5", "--device", "cpu")
    assert code == 0, stdout + stderr
    assert re.search(r"^re-ran dememo.json: PASS rerun [0-9a-f]{12}: .*--rerun-seed 5$", stdout, re.M), stdout
    code, stdout, _ = cli("leaderboard", "build", str(d), "--out", str(tmp_path / "board"), "--rerun", "-1")
    assert code == 2


# -- item 2: escaping ---------------------------------------------------------------------------------

MARKUP = "x | y <img src=x onerror=alert(1)> ![t](http://e/x.png) *b* `c` _d_ [l](http://e)"


def test_names_and_labels_cannot_inject_markup(run, tmp_path):
    b = copy.deepcopy(run["third"])
    b["name"] = "Evil | entry <img src=x onerror=alert(1)> ![t](http://e/x.png)"
    b["plugin"]["version"] = MARKUP
    b["columns"]["unlearning"]["test_acc"]["label"] = "TA | <b>x</b>"
    d = entries(tmp_path, "e", {"evil.json": faults.rehash(b)})
    submission.build_board(d, tmp_path / "board")
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    assert faults.raw_markdown(md) == [] and faults.ragged_tables(md) == []
    assert "<img" not in md and "![" not in md and "http://" not in md
    assert md.count("x \\| y &lt;img src=x onerror=alert(1)&gt; \\!\\[t\\](http:&#47;&#47;e/x.png)") == 1
    tables = [block for block in md.split("\n\n") if block.startswith("|")]
    assert len(tables) >= 2
    for block in tables:
        rows = [line for line in block.splitlines() if line.startswith("|")]
        assert len({len(re.findall(r"(?<!\\)\|", r)) for r in rows}) == 1, block
    html = (tmp_path / "board" / "leaderboard.html").read_text()
    assert "<img src=x" not in html and "<b>x</b>" not in html and "TA | &lt;b&gt;x&lt;/b&gt;" in html
    # a row label is no free text: markup in one is a label its config does not make (item 13)
    for c in b["cells"]:
        if (c.get("unlearner") or "").startswith("mine-"):
            c["method"] = MARKUP + " " + c["method"]
    d = entries(tmp_path, "labels", {"evil.json": faults.rehash(b)})
    with pytest.raises(UserError, match=r"evil.json: labels check failed: .*method label 'x \| y <img"):
        submission.build_board(d, tmp_path / "board-labels")


def test_md_escape():
    from dememo.board.leaderboard import md_code, md_escape

    assert md_escape("a|b\nc") == "a\\|b c" and md_escape(None) is None
    assert md_escape("<script>") == "&lt;script&gt;" and md_escape("![a](b)") == "\\!\\[a\\](b)"
    assert md_escape("random-noise(mode=class) → finetune") == "random-noise(mode=class) → finetune"
    assert md_code("quick") == "`quick`" and md_code("q`x") == "q\\`x"


# -- item 3: bundles of runs with --set ---------------------------------------------------------------


def test_verify_rerun_of_a_set_run_uses_the_recorded_parameters(run):
    b = run["bundle"]
    cell = next(c for c in b["cells"] if c["status"] == "ok" and (c.get("unlearner") or "").startswith("finetune"))
    assert cell["params"]["unlearner"]["params"]["epochs"] == 2
    seed = next(s for s in range(200) if submission.pick_cells(b, 1, s)[0]["key"] == cell["key"])
    code, stdout, stderr = cli("verify", str(run["path"]), "--rerun", "1", "--rerun-seed", str(seed), "--device", "cpu")
    assert code == 0, stdout + stderr
    assert f"PASS rerun {cell['key'][:12]}: finetune" in stdout


def test_a_cell_that_still_cannot_be_replanned_says_what_differs(run):
    b = copy.deepcopy(run["bundle"])
    first = next(c for c in b["cells"] if c["status"] == "ok" and (c.get("unlearner") or "").startswith("finetune"))
    cells = [first, copy.deepcopy(first)]
    b["cells"].append(cells[1])
    cells[0]["params"]["unlearner"]["version"] = "9"
    cells[1]["params"]["unlearner"]["params"]["schedule"] = "bogus"
    for c in cells:
        c["key"] = digest(c["params"])
    checks = {c.name: c for c in submission.rerun_checks(faults.rehash(b), 0, keys=[c["key"] for c in cells],
                                                         runner_factory=lambda *a: pytest.fail("nothing may run"))}
    version = checks[f"rerun {cells[0]['key'][:12]}"].detail
    assert "unlearner finetune: installed version '1' (from dememo" in version and "has version '9' (dememo" in version
    schedule = checks[f"rerun {cells[1]['key'][:12]}"].detail
    assert "unlearner.params.schedule: installed here 'cosine', bundle 'bogus'" in schedule


# -- item 4: the benchmark's scenario -----------------------------------------------------------------


def test_hostile_bundles_scenario(run, tmp_path):
    tally = faults.hostile_bundles(tmp_path, seed=1, genuine=run["path"])
    assert tally.category == "hostile bundle" and tally.tried >= 22
    assert (tally.handled, tally.lost, tally.wrong) == (tally.tried, 0, 0), tally.notes


def _failed_checks(b: dict) -> dict[str, str]:
    return {c.name: c.detail for c in submission.verify(b) if not c.ok}


def _alone(run, tmp_path, name: str, hostile: dict) -> str:
    """Build a board of the genuine bundle and ``hostile`` (as ``name``): the genuine entry must stay, with
    its numbers, and the hostile file be refused; its reason."""
    d = entries(tmp_path, f"e-{name}", {"dememo.json": run["bundle"], name: hostile})
    board = submission.build_board(d, tmp_path / f"board-{name}")
    refused = dict(board.refused)
    assert [e["file"] for e in board.accepted] == ["dememo.json"] and list(refused) == [name], refused
    cells = by_slot(tmp_path / f"board-{name}")
    assert all(cells[_slot(c)]["metrics"] == c["metrics"] for c in submission.own_cells(run["bundle"]))
    assert set(cells) == set(map(_slot, submission.own_cells(run["bundle"])))  # nothing of the hostile's
    return refused[name]


# -- issue 18, round 2: labels (13) ---------------------------------------------------------------------


def test_a_label_must_say_what_its_config_is(run, tmp_path):
    relabelled = faults.relabelled(run["bundle"])  # unlearner evil-finetune labelled "retrain", on a new seed
    assert {c["method"] for c in submission.own_cells(relabelled)} == {"retrain"}
    assert "labels" in _failed_checks(relabelled)
    reason = _alone(run, tmp_path, "relabel.json", relabelled)
    assert reason.startswith("labels check failed: a name or label does not say what the config is: cell ")
    assert "unlearner label 'retrain' names 'retrain', its config unlearner 'evil-finetune'" in reason
    # a look-alike of a first-party name (full-width letter, NFKC-equal to finetune) is no plugin name here
    lookalike = faults.lookalike(run["bundle"])
    assert submission.fold(lookalike["plugins"][0]["name"]) == "finetune"
    reason = _alone(run, tmp_path, "lookalike.json", lookalike)
    assert "unlearner name 'ｆinetune' is not ASCII kebab-case" in reason
    # shown parameters must be the config's, and the method is recomputed from the plugin labels
    b = copy.deepcopy(run["bundle"])
    cell = next(c for c in b["cells"] if c["unlearner"] == "finetune(epochs=2)")
    cell["unlearner"] = cell["method"] = "finetune(epochs=3)"
    assert "shows parameters its config's finetune does not have" in _failed_checks(faults.rehash(b))["labels"]
    cell["unlearner"], cell["method"] = "finetune(epochs=2)", "finetune"
    assert "method label 'finetune', its plugin labels make 'finetune(epochs=2)'" in _failed_checks(faults.rehash(b))["labels"]
    cell["method"], cell["forget"] = "finetune(epochs=2)", "random-50%"
    assert "forget label 'random-50%', its config's forget set reads 'random-10%'" in _failed_checks(faults.rehash(b))["labels"]
    assert "labels" not in _failed_checks(run["bundle"]) and "labels" not in _failed_checks(run["third"])


# -- every check verify applies, the board applies (14) -----------------------------------------------


def test_the_board_refuses_what_verify_fails(run, tmp_path):
    b = faults.out_of_range(run["bundle"])  # a fraction of 3.0 and a 500-epoch recipe, hashes recomputed
    failed = _failed_checks(b)
    assert {"metrics", "suite"} <= set(failed) and "= 3.0 is outside [0, 1]" in failed["metrics"]
    assert _alone(run, tmp_path, "range.json", b).startswith("metrics check failed: ")
    refless = copy.deepcopy(run["third"])  # own rows without the reference rows of their tables
    refless["cells"] = submission.own_cells(refless)
    reason = _alone(run, tmp_path, "refless.json", faults.rehash(refless))
    assert reason.startswith("references check failed: table unlearning/digits/random-10% has no reference row")


# -- failed cells with numbers are drawn by re-runs (15) ----------------------------------------------


def test_failed_cells_with_numbers_are_drawn_by_reruns(run):
    b = faults.failed_with_numbers(run["bundle"])
    own = submission.own_cells(b)
    assert own and all(c["status"] == "failed" and submission.has_numbers(c) for c in own)
    assert {c["key"] for c in submission.pick_cells(b, len(b["cells"]), 0)} == {c["key"] for c in own}

    class Finishes:  # an honest re-run finishes the cell: the claim "failed, with these numbers" differs
        def __call__(self, planner, cache_dir):
            return self

        def run_cell(self, cell):
            return CellRecord(cell.track, cell.data.name, cell.method, cell.attack.label, cell.seed, cell.key, series={})

    registry_free = copy.deepcopy(run["bundle"])  # the installed finetune: re-plannable here
    for c in submission.own_cells(registry_free):
        if c["unlearner"] == "finetune(epochs=2)":
            c["status"], c["error"] = "failed", {"stage": "metric:x", "message": "x"}
    faults.rehash(registry_free)
    failed_keys = [c["key"] for c in registry_free["cells"] if c["status"] == "failed"]
    seed = next(s for s in range(500) if submission.pick_cells(registry_free, 1, s)[0]["key"] in failed_keys)
    checks = submission.rerun_checks(registry_free, 1, seed=seed, runner_factory=Finishes())
    assert [c.ok for c in checks] == [False] and "status failed claimed, ok recomputed" in checks[0].detail


# -- only the bundle's own plugins may differ from the suite's plan (16) ------------------------------


def test_set_on_the_suites_data_or_reference_plugins_is_another_protocol(run, tmp_path):
    b = copy.deepcopy(run["bundle"])  # as a run with --set digits.<param>=... --set mlp.hidden=16 makes it
    for c in b["cells"]:
        c["params"]["data"]["architecture"]["params"]["hidden"] = 16
        c["key"] = digest(c["params"])
    failed = _failed_checks(faults.rehash(b))
    assert "its architecture differ from what suite 'tiny' plans for digits" in failed["suite"]
    assert "data.architecture.params.hidden: installed here" in failed["suite"]
    own = submission.owning_plugins(b)
    sets = _recorded_sets(b["cells"][0]["params"], own)
    assert not {"digits", "mlp"} & set(sets)  # re-runs never re-plan the suite's data as recorded
    reason = _alone(run, tmp_path, "deviant.json", faults.deviant_data(run["bundle"]))
    assert reason.startswith("suite check failed: ") and "differ from what suite 'tiny' plans for digits" in reason
    # a reference unlearner with other parameters is not the bundle's own either
    third = copy.deepcopy(run["third"])
    ref = next(c for c in third["cells"] if c["unlearner"] == "retrain")
    ref["params"]["unlearner"]["params"] = {**ref["params"]["unlearner"]["params"], "bogus": 1}
    ref["key"] = digest(ref["params"])
    assert "unlearner retrain (not the bundle's own) has version" in _failed_checks(faults.rehash(third))["suite"]


# -- --rerun K re-runs what the previous board does not record as re-run with K (17) ------------------


def test_rerun_records_on_the_board_decide_what_a_rebuild_reruns(run, tmp_path):
    g = run["bundle"]
    d = entries(tmp_path, "e", {"dememo.json": g})
    out = tmp_path / "board"
    board = submission.build_board(d, out)  # without --rerun: nothing recorded
    assert "rerun" not in json.loads((out / "results.json").read_text())["entries"][0]
    board = submission.build_board(d, out, rerun=1, rerun_seed=3, runner_factory=Replay(g))
    assert len(board.reruns) == 1 and board.reruns[0][1].ok  # on the board already, but never re-run: re-run
    entry = json.loads((out / "results.json").read_text())["entries"][0]
    assert entry["rerun"] == {"k": 1, "cells": 1, "seed": 3, "verdict": "pass"}
    board = submission.build_board(d, out)  # a rebuild without --rerun keeps the record of the same content
    assert json.loads((out / "results.json").read_text())["entries"][0]["rerun"] == entry["rerun"]
    board = submission.build_board(d, out, rerun=1, runner_factory=lambda *a: pytest.fail("no re-run"))
    assert not board.reruns and any("already re-run on the board" in n for n in board.notes)
    board = submission.build_board(d, out, rerun=2, rerun_seed=4, runner_factory=Replay(g))  # more than before
    assert len(board.reruns) == 2
    assert json.loads((out / "results.json").read_text())["entries"][0]["rerun"]["k"] == 2


# -- the installed plugins settle claims (18) ---------------------------------------------------------


def test_no_bundle_can_take_the_installed_entry_off_the_board(run, tmp_path):
    g = run["bundle"]
    for name, family, plugin in [("none.json", "attack", "none"), ("retrain.json", "unlearner", "retrain"),
                                 ("finetune.json", "unlearner", "finetune")]:
        reason = _alone(run, tmp_path, name, faults.claims_reference(g, family, plugin))
        assert reason.startswith(f"claims {family} {plugin!r} as dememo-claims 0.1's, but the board's installed "
                                 f"{family} {plugin!r} is dememo 0.1.0's")
    other_version = copy.deepcopy(g)
    other_version["plugin"]["version"] = "9.9"
    reason = _alone(run, tmp_path, "version.json", faults.rehash(other_version))
    assert "as dememo 9.9's, but the board's installed" in reason
    # a reference attack in every row makes no row its claimant's: claiming it owns nothing
    claims = faults.claims_reference(g, "attack", "none")
    own, context, foreign = submission.split_cells(claims)
    assert own and all(c["unlearner"].startswith("claims-") for c in own) and context and not foreign
    assert ("attack", "none") in submission.claimed_plugins(claims) and ("attack", "none") not in submission.owning_plugins(claims)


# -- CSV formulas and partial results (D) --------------------------------------------------------------


def test_csv_fields_are_never_formulas(run, tmp_path):
    from dememo.board.leaderboard import csv_text

    assert csv_text("=1+1") == "'=1+1" and csv_text("@SUM(A1)") == "'@SUM(A1)" and csv_text("-2+3") == "'-2+3"
    assert csv_text("+x") == "'+x" and csv_text("finetune") == "finetune" and csv_text(None) is None
    d = entries(tmp_path, "e", {"dememo.json": run["bundle"], "formula.json": faults.formula_column(run["bundle"])})
    board = submission.build_board(d, tmp_path / "board")
    assert sorted(e["file"] for e in board.accepted) == ["dememo.json", "formula.json"]
    rows = list(csv.reader(io.StringIO((tmp_path / "board" / "leaderboard.csv").read_text())))
    assert any(r[5] == "'-2-3" for r in rows)
    assert not [f for r in rows for f in r if f[:1] in "=+@" and f] and all(r[7][:1] != "'" for r in rows[1:])


def test_the_bundle_api_refuses_partial_results(run):
    from dememo import results

    data = results.load_results(run["base"] / "out")
    assert submission.bundle(data, "First party", "dememo")["cells"]
    data["partial"] = {"cells_done": 1, "cells_planned": 3}
    with pytest.raises(UserError, match=r"partial results \(1 of 3 cells, the run was stopped\) make no bundle"):
        submission.bundle(data, "First party", "dememo")
