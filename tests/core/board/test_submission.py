"""Leaderboard submissions: submit → verify → build, and the tampered bundles each check must reject.

One narrowed tiny-suite run per module (digits, 5 epochs, 24 cells: two poisoners, finetune, two metrics,
unattacked) supplies a genuine bundle. First-party plugins all come from the distribution ``dememo``, so the
bundle is ``--plugin dememo``. Measured on 2 shared CPU cores: about 35 s for the file, most of it the
run and the ``dememo-bench`` subprocesses.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import pickle
import random

import pytest
import torch
from support import TINY_SUITE, bench, load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qa.faults import third_party

from dememo.board import submission
from dememo.cli import main
from dememo.errors import UserError
from dememo.hashing import digest

NARROW = ["--poisoner", "none", "--poisoner", "random-noise", "--unlearner", "finetune",
          "--metric", "clean-accuracy", "--metric", "unlearning-accuracy", "--attack", "none"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("submission")
    (base / "tiny.toml").write_text(TINY_SUITE)
    proc = bench("--all", "--suite", str(base / "tiny.toml"), *NARROW, "--out", str(base / "out"),
                 "--cache-dir", str(base / "cache"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    code, _, err = cli("submit", "--results", str(base / "out"), "--name", "First party", "--plugin", "dememo",
                       "--out", str(base / "entry.json"))
    assert code == 0, err
    return {"base": base, "results": load(base / "out"), "path": base / "entry.json",
            "bundle": submission.load_bundle(base / "entry.json")}


def cli(*args: str) -> tuple[int, str, str]:
    """``dememo-bench`` in this process (a subprocess costs seconds of imports): exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _rehash(b: dict) -> dict:
    b["content_sha256"] = submission.content_hash(b)
    return b


def _failed(checks) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.ok}


def _own_ok_cell(b: dict) -> dict:
    return next(c for c in b["cells"] if c["status"] == "ok" and c["params"]["poisoner"]
                and c["params"]["poisoner"]["name"] == "random-noise" and c["track"] == "unlearnability")


def test_bundle_content(run):
    b, res = run["bundle"], run["results"]
    assert b["schema"] == "dememo.submission/1" and b["results_schema"] == "dememo.results/1"
    assert b["plugin"]["distribution"] == "dememo" and b["plugin"]["version"] == res["environment"]["dememo"]
    assert b["suite"] == res["suite"] and b["suite_fingerprint"] == digest(res["suite"])
    assert b["seeds"] == [0] and {"torch", "cuda", "gpu", "dememo"} <= set(b["environment"])
    assert {c["key"] for c in b["cells"]} == {c["key"] for c in res["cells"]}  # every plugin is from dememo
    assert all("timings" not in c and c["key"] == digest(c["params"]) for c in b["cells"])
    assert b["content_sha256"] == submission.content_hash(b)
    assert submission.schema_errors(b) == []
    with pytest.raises(UserError, match="no cell in results uses a plugin from distribution 'dememo-nope'.*: dememo"):
        submission.bundle(res, "x", "dememo-nope")


def test_round_trip_submit_verify_build(run, tmp_path):
    code, stdout, stderr = cli("verify", str(run["path"]))
    assert code == 0, stdout + stderr
    lines = stdout.splitlines()
    assert lines and all(line.startswith("PASS ") for line in lines)
    assert {line.split()[1].rstrip(":") for line in lines} >= {"schema", "content-hash", "keys", "metrics", "suite",
                                                              "plugin-version", "references"}
    entries = tmp_path / "entries"
    entries.mkdir()
    (entries / "first-party.json").write_bytes(run["path"].read_bytes())
    code, stdout, stderr = cli("leaderboard", "build", str(entries), "--out", str(tmp_path / "board"))
    assert code == 0, stdout + stderr
    assert "accepted first-party.json: First party (dememo" in stdout
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "## Entries" in md and "| First party" in md and run["bundle"]["plugin"]["version"] in md
    assert "random-noise(mode=class)" in md and "finetune" in md
    merged = json.loads((tmp_path / "board" / "results.json").read_text())
    assert merged["schema"] == "dememo.results/1" and len(merged["cells"]) == len(run["bundle"]["cells"])
    assert merged["entries"][0]["name"] == "First party"


def test_verify_rerun_on_a_genuine_bundle_passes(run):
    code, stdout, stderr = cli("verify", str(run["path"]), "--rerun", "1", "--rerun-seed", "0")
    assert code == 0, stdout + stderr
    rerun = [line for line in stdout.splitlines() if line.startswith("PASS rerun ")]
    assert len(rerun) == 1 and "within tolerance (|Δ| ≤ 0.02 for fraction columns" in rerun[0]
    assert "--rerun-seed 0" in rerun[0]


def test_changed_metric_fails_the_hash_and_with_a_recomputed_hash_the_rerun(run, tmp_path):
    b = copy.deepcopy(run["bundle"])
    cell = _own_ok_cell(b)
    cell["metrics"]["test_acc"] = round(cell["metrics"]["test_acc"] - 0.2, 4)  # a "stronger" poison, still in range
    failed = _failed(submission.check_bundle(b))
    assert set(failed) == {"content-hash"} and "changed after it was written" in failed["content-hash"]
    _rehash(b)  # a tamperer who recomputes the hash passes every static check ...
    assert _failed(submission.check_bundle(b)) == {}
    checks = submission.verify(b, keys=[cell["key"]], cache_dir=tmp_path / "cache")
    failed = _failed(checks)  # ... and the re-run from an empty cache catches the doctored number
    assert set(failed) == {f"rerun {cell['key'][:12]}"}
    assert "test_acc: claimed" in failed[f"rerun {cell['key'][:12]}"] and "|Δ| ≤ 0.02" in failed[f"rerun {cell['key'][:12]}"]
    # the seeded draw finds it too when it is the cell drawn
    seed = next(s for s in range(100) if submission.pick_cells(b, 1, s)[0]["key"] == cell["key"])
    path = tmp_path / "doctored.json"
    path.write_text(json.dumps(b))
    code, stdout, stderr = cli("verify", str(path), "--rerun", "1", "--rerun-seed", str(seed))
    assert code == 1 and f"FAIL rerun {cell['key'][:12]}" in stdout, stdout + stderr


def test_rerun_of_a_cell_no_installed_plugin_reproduces_fails_without_running(run):
    b = copy.deepcopy(run["bundle"])
    cell = _own_ok_cell(b)
    cell["params"]["poisoner"]["version"] = "2"  # a version this installation does not have
    cell["key"] = digest(cell["params"])
    other = next(c for c in b["cells"] if c["track"] == "unlearning" and c["unlearner"] == "finetune")
    other["params"]["unlearner"]["name"] = "finetune-pro"
    other["unlearner"] = other["method"] = "finetune-pro"  # its labels say so (the labels check)
    other["key"] = digest(other["params"])
    failed = _failed(submission.verify(_rehash(b), keys=[cell["key"], other["key"]],
                                       runner_factory=lambda *a: pytest.fail("nothing may run")))
    assert set(failed) == {"plugin-version", f"rerun {cell['key'][:12]}", f"rerun {other['key'][:12]}"}
    assert f"cell {cell['key']} cannot be re-planned here: plugin dememo version" in failed[f"rerun {cell['key'][:12]}"]
    assert "is not installed or its parameters differ" in failed[f"rerun {cell['key'][:12]}"]
    assert "unknown unlearner 'finetune-pro'" in failed[f"rerun {other['key'][:12]}"]


def test_out_of_range_and_changed_key_are_named(run):
    b = copy.deepcopy(run["bundle"])
    _own_ok_cell(b)["metrics"]["test_acc"] = 1.5
    failed = _failed(submission.check_bundle(_rehash(b)))
    assert set(failed) == {"metrics"} and "test_acc = 1.5 is outside [0, 1] for a fraction column" in failed["metrics"]
    b = copy.deepcopy(run["bundle"])
    cell = _own_ok_cell(b)
    cell["key"] = "0" * 64
    failed = _failed(submission.check_bundle(_rehash(b)))
    assert set(failed) == {"keys"} and "does not recompute" in failed["keys"] and "000000000000" in failed["keys"]
    b = copy.deepcopy(run["bundle"])
    _own_ok_cell(b)["params"]["unlearner"] = None  # a changed config: its key no longer matches either
    _own_ok_cell(b)["params"]["seed"] = 1
    assert "keys" in _failed(submission.check_bundle(_rehash(b)))


def test_series_must_be_declared_and_well_formed(run):
    b = copy.deepcopy(run["bundle"])
    b["columns"]["unlearnability"]["acc_curve"] = {"label": "curve", "direction": "info", "unit": "series"}
    cell = _own_ok_cell(b)
    cell["series"] = {"acc_curve": {"x_name": "eta", "x": [0.0, 1.0], "y": [0.9, None]}}
    assert _failed(submission.check_bundle(_rehash(b))) == {}
    cell["series"]["acc_curve"]["y"] = [0.9]
    assert "2 x values but 1 y values" in _failed(submission.check_bundle(_rehash(b)))["series"]
    cell["series"] = {"test_acc": {"x": [0.0], "y": [0.5]}}
    assert "not a declared series column" in _failed(submission.check_bundle(_rehash(b)))["series"]


def test_wrong_schema_names_the_field(run, tmp_path):
    b = copy.deepcopy(run["bundle"])
    b["cells"][3]["status"] = "done"
    failed = _failed(submission.check_bundle(_rehash(b)))
    assert set(failed) == {"schema"} and "/cells/3/status" in failed["schema"] and "'done'" in failed["schema"]
    b = copy.deepcopy(run["bundle"])
    del b["suite_fingerprint"]
    assert "'suite_fingerprint' is a required property" in _failed(submission.check_bundle(b))["schema"]
    b = copy.deepcopy(run["bundle"])
    b["cells"][0]["metrics"]["test_acc"] = "95%"
    assert "/cells/0/metrics/test_acc" in _failed(submission.check_bundle(b))["schema"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_rehash(b)))
    code, stdout, stderr = cli("verify", str(path))
    assert code == 1 and stdout.startswith("FAIL schema: ") and "/cells/0/metrics/test_acc" in stdout


def test_load_bundle_refuses_before_parsing(run, tmp_path, monkeypatch):
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(submission.MAX_BYTES + 1)  # sparse: nothing is read
    with pytest.raises(UserError, match=r"over the bundle size limit of 33554432 bytes \(32 MiB\)"):
        submission.load_bundle(big)
    monkeypatch.setattr("dememo.board.bundle.MAX_BYTES", 1000)  # what load_bundle reads
    with pytest.raises(UserError, match="over the bundle size limit of 1000 bytes"):
        submission.load_bundle(run["path"])
    monkeypatch.undo()

    marker = tmp_path / "executed"

    class Payload:  # unpickling this would create the marker file
        def __reduce__(self):
            return (open, (str(marker), "w"))

    pkl = tmp_path / "entry.pkl.json"
    pkl.write_bytes(pickle.dumps({"bundle": run["bundle"], "x": Payload()}))
    with pytest.raises(UserError, match="looks like a pickle .*bundles are JSON only"):
        submission.load_bundle(pkl)
    assert not marker.exists()
    zipped = tmp_path / "entry.pt"
    torch.save({"w": torch.zeros(2)}, zipped)
    with pytest.raises(UserError, match="looks like a zip archive"):
        submission.load_bundle(zipped)

    for payload, pattern in [
        (b"<html>not a bundle</html>", r"is not JSON: Expecting value at byte 0"),
        (b'{"schema": "dememo.submission/1",} trailing', r"is not JSON: .* at byte 33"),
        (b'{"a": NaN}', "non-finite number NaN"),
        (b'{"a": 1e999}', "overflows to infinity"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        ("{\"a\": \"caf\u00e9\"}".encode("latin-1"), r"not UTF-8 text \(byte 10\)"),
        (b"[1, 2]", "top-level JSON value is a list"),
    ]:
        path = tmp_path / "p.json"
        path.write_bytes(payload)
        with pytest.raises(UserError, match=pattern):
            submission.load_bundle(path)
    code, stdout, stderr = cli("verify", str(big))
    assert code == 2 and "over the bundle size limit" in stderr and stderr.count("\n") == 1
    code, stdout, stderr = cli("verify", str(tmp_path / "missing.json"))
    assert code == 2 and "no bundle at" in stderr


def test_build_refuses_other_suites_protocols_and_taken_rows(run, tmp_path):
    entries = tmp_path / "entries"
    entries.mkdir()
    (entries / "a-first-party.json").write_bytes(run["path"].read_bytes())
    other = copy.deepcopy(run["bundle"])
    other["name"] = "More seeds"
    other["suite"]["seeds"] = 5
    other["suite_fingerprint"] = digest(other["suite"])
    (entries / "b-other-suite.json").write_text(json.dumps(_rehash(other)))
    future = copy.deepcopy(run["bundle"])
    future["schema"] = "dememo.submission/2"
    (entries / "c-future.json").write_text(json.dumps(future))
    (entries / "e-pickle.json").write_bytes(pickle.dumps(run["bundle"]))
    doctored = copy.deepcopy(run["bundle"])
    doctored["name"] = "Doctored"
    _own_ok_cell(doctored)["metrics"]["test_acc"] = 0.1
    (entries / "f-doctored.json").write_text(json.dumps(doctored))

    # without board.json the suite most bundles share is the board's (a third party's bundle shares it)
    submission.write_bundle(third_party(run["bundle"], "dememo-plugin-x", "x-"), entries / "g-third.json")
    board = submission.build_board(entries, tmp_path / "board")
    assert [e["file"] for e in board.accepted] == ["a-first-party.json", "g-third.json"]
    refused = dict(board.refused)
    assert "differs from the board's" in refused["b-other-suite.json"] and "another suite" in refused["b-other-suite.json"]
    assert "protocol 'dememo.submission/2'" in refused["c-future.json"]
    assert "looks like a pickle" in refused["e-pickle.json"]
    assert refused["f-doctored.json"].startswith("content-hash check failed")
    code, stdout, stderr = cli("leaderboard", "build", str(entries), "--out", str(tmp_path / "board2"))
    assert code == 1 and "refused b-other-suite.json: suite 'tiny' fingerprint" in stdout
    assert (tmp_path / "board2" / "leaderboard.md").exists()

    # a second bundle with the same rows: neither is trusted over the other, both are held back (issue 18)
    same = tmp_path / "same"
    same.mkdir()
    (same / "a-first-party.json").write_bytes(run["path"].read_bytes())
    again = copy.deepcopy(run["bundle"])
    again["name"] = "Same rows"
    (same / "d-same-rows.json").write_text(json.dumps(_rehash(again)))
    with pytest.raises(UserError, match=r"a-first-party.json: held back: a-first-party.json and d-same-rows.json "
                                         r"conflict \(both are distribution 'dememo'; .*row\(s\) as their own"):
        submission.build_board(same, tmp_path / "board-same")

    # board.json pins the suite: the first-party entry, run under another suite, is refused
    pinned = tmp_path / "pinned"
    pinned.mkdir()
    (pinned / "a-first-party.json").write_bytes(run["path"].read_bytes())
    (pinned / "b-other-suite.json").write_text(json.dumps(other))
    (pinned / "board.json").write_text(json.dumps({"schema": "dememo.board/1", "suite_fingerprint": other["suite_fingerprint"]}))
    board = submission.build_board(pinned, tmp_path / "board3")
    assert [e["file"] for e in board.accepted] == ["b-other-suite.json"]
    assert "another suite" in dict(board.refused)["a-first-party.json"]


def _metric_entry(genuine: dict, metric: str, dist: str) -> dict:
    """A metric's bundle made from the genuine run: every cell also computed ``metric`` (its column
    ``evil_col``) and claims a value of another metric's column too (``test_acc`` = 0.0)."""
    b = copy.deepcopy(genuine)
    b.update(name=f"{metric} entry", plugin={"distribution": dist, "version": "0.1"},
             plugins=[{"family": "metric", "name": metric, "version": "1"}])
    for track in b["columns"]:
        b["columns"][track]["evil_col"] = {**b["columns"][track]["test_acc"], "metric": metric, "label": "evil"}
    for c in b["cells"]:
        c["params"]["metrics"] = sorted(c["params"]["metrics"] + [{"name": metric, "params": {}, "version": "1"}],
                                        key=lambda m: m["name"])
        c["metrics"].update(evil_col=0.99, test_acc=0.0)
        c["key"] = digest(c["params"])
    return _rehash(b)


def test_a_metric_entry_gives_only_its_installed_metrics_columns(run, tmp_path):
    """A metric's entry owns columns, not rows: its cells of others' rows are accepted as the rows its metric
    was computed on, and the board merges only the columns of metrics installed where it is built from the
    entry's distribution, named by the installed class. A forged metric (not installed) merges nothing, and
    no entry's metric values replace another metric's column (``test_acc`` stays the first party's)."""
    entries = tmp_path / "entries"
    entries.mkdir()
    (entries / "a-first-party.json").write_bytes(run["path"].read_bytes())
    forged = _metric_entry(run["bundle"], "evil-metric", "dememo-plugin-evil")
    assert not [c for c in submission.check_bundle(forged) if not c.ok]
    submission.write_bundle(forged, entries / "b-metric.json")
    board = submission.build_board(entries, tmp_path / "board")
    assert [e["file"] for e in board.accepted] == ["a-first-party.json", "b-metric.json"]
    assert board.accepted[1]["cells"] == 0 and board.accepted[1]["columns"] == []
    assert any("evil-metric are not installed where the board is built" in n for n in board.notes)
    merged = json.loads((tmp_path / "board" / "results.json").read_text())
    genuine = {(c["track"], c["method"], c["seed"]): c["metrics"] for c in run["bundle"]["cells"]}
    for c in merged["cells"]:
        assert "evil_col" not in c["metrics"] and c["metrics"] == genuine[(c["track"], c["method"], c["seed"])]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


def _shuffled(value, rnd: random.Random):
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _shuffled(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(max_size=6), JSON, max_size=6), st.integers(0, 2**32))
def test_content_hash_is_invariant_to_key_order(value, seed):
    shuffled = _shuffled(value, random.Random(seed))
    assert submission.canonical_bytes(shuffled) == submission.canonical_bytes(value)
    assert submission.content_hash(shuffled) == submission.content_hash(value)
    assert submission.content_hash({**value, "content_sha256": "x"}) == submission.content_hash(value)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters="\x7f"), min_size=1, max_size=40).filter(str.strip),
       values=st.lists(st.none() | st.floats(0, 1), min_size=1, max_size=6), indent=st.sampled_from([None, 0, 2]),
       seed=st.integers(0, 2**16))
def test_schema_round_trips_generated_bundles(run, tmp_path, name, values, indent, seed):
    b = copy.deepcopy(run["bundle"])
    b["cells"] = b["cells"][:4]
    b["name"] = name
    for cell, v in zip(b["cells"], values):
        for col in cell["metrics"]:
            if b["columns"][cell["track"]][col]["unit"] == "fraction":
                cell["metrics"][col] = v
    b = _shuffled(_rehash(b), random.Random(seed))
    path = tmp_path / "gen.json"
    path.write_text(json.dumps(b, indent=indent, ensure_ascii=bool(seed % 2)), encoding="utf-8")
    loaded = submission.load_bundle(path)
    assert loaded == b
    assert submission.schema_errors(loaded) == []
    assert submission.content_hash(loaded) == loaded["content_sha256"]


def test_a_row_with_a_new_plugin_is_that_plugins_alone():
    """Reference plugins own a row only when nothing else defines it: the interplay row ``none → mine`` is
    ``mine``'s (so two bundles of one run never both carry it), ``none → retrain`` the reference plugins'."""
    suite = {"references": {"poisoner": ["none"], "unlearner": ["original", "retrain"], "attack": ["none"]}}
    first_party = {("poisoner", "none"), ("unlearner", "retrain"), ("unlearner", "original"), ("metric", "tow")}

    def cell(poisoner, unlearner):
        return {"params": {"poisoner": {"name": poisoner}, "unlearner": {"name": unlearner}, "attack": {"name": "none"},
                           "data": {"dataset": {"name": "digits"}, "architecture": {"name": "mlp"}}}}

    assert submission.is_own(cell("none", "mine"), {("unlearner", "mine")}, suite)
    assert not submission.is_own(cell("none", "mine"), first_party, suite)
    assert submission.is_own(cell("none", "retrain"), first_party, suite)
    assert submission.is_own(cell("mine-poison", "retrain"), {("poisoner", "mine-poison")}, suite)
    assert not submission.is_own(cell("mine-poison", "retrain"), first_party, suite)
    first_party.add(("unlearner", "scrub"))  # a row of a first-party method and a third-party poisoner
    assert submission.is_own(cell("mine-poison", "scrub"), {("poisoner", "mine-poison")}, suite)
    assert not submission.is_own(cell("mine-poison", "scrub"), first_party, suite)
    assert submission.is_own(cell("none", "scrub"), first_party, suite)
    assert submission.column_plugins({"plugins": [{"family": "metric", "name": "tow"},
                                                  {"family": "unlearner", "name": "retrain"}], "suite": suite}) == set()
