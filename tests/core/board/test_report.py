"""``dememo-bench report``: the aggregation behind each figure is right (mean over seeds, undefined points
left out, the unattacked model as strength 0, blanks for interplay pairs not run, failures counted), the
report is the expected set of PNG / SVG files plus one self-contained HTML page, re-rendering gives
byte-identical files, and user errors are one line with exit code 2.

Synthetic results in the real schema (``dememo.results.assemble``): two seeds, reference rows, an
unlearnability group with depth series and a weight-recovery sweep, an unlearning group with depth and
residual-knowledge series (one null point), and interplay cells for both targets with a pair not run, a pair
whose every cell failed and one with a failed seed. Measured: about 20 s for the whole file on one busy
core (a full report of these results renders in about 4 s).
"""

from __future__ import annotations

import base64
import copy
import html
import json
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dememo import cli
from dememo.board.report import (
    Figure,
    aggregate,
    figures,
    interplay_matrix,
    render_html,
    series_by_method,
    slug,
    sweep_by_method,
    write_report,
)
from dememo.errors import UserError
from dememo.results import assemble
from dememo.results.record import records

ETAS = [0.0, 0.5, 1.0]
TAUS = [0.0, 0.01, 0.02]
SHARE = "owner-50% (poisoned, forgotten)"
CLEAN = "clean-10% (owner-50% poisoned)"

COLUMNS = {
    "unlearnability": {
        "test_acc": {"label": "TA", "direction": "lower", "unit": "fraction"},
        "depth_eta": {"label": "depth η", "direction": "higher", "unit": "number"},
        "depth_target": {"label": "depth target", "direction": "info", "unit": "fraction"},
        "depth_eta_curve": {"label": "depth η curve", "direction": "info", "unit": "series"},
        "depth_sigma_curve": {"label": "depth σ curve", "direction": "info", "unit": "series"},
    },
    "unlearning": {
        "forget_acc": {"label": "FA", "direction": "match", "unit": "fraction", "reference": "retrain"},
        "depth_eta_curve": {"label": "depth η curve", "direction": "info", "unit": "series"},
        "rk_gauss_curve": {"label": "RK Gauss curve", "direction": "match", "unit": "series", "reference": "retrain"},
        "rk_pgd_curve": {"label": "RK PGD curve", "direction": "match", "unit": "series", "reference": "retrain"},
    },
    "interplay": {
        "share_clean_gain": {"label": "share gain", "direction": "info", "unit": "fraction"},
        "share_clean_acc": {"label": "share clean acc", "direction": "match", "unit": "fraction", "reference": "retrain"},
        "test_acc": {"label": "TA", "direction": "higher", "unit": "fraction"},
        "avg_gap": {"label": "Avg Gap", "direction": "lower", "unit": "fraction"},
        "depth_eta_curve": {"label": "depth η curve", "direction": "info", "unit": "series"},
    },
}
SUITE = {
    "name": "synthetic", "description": "hand-made results for the report tests",
    "references": {"poisoner": ["none"], "unlearner": ["original", "retrain"], "attack": ["none"]},
    "curves": [{"attack": "weight-recovery", "param": "eta", "column": "test_acc", "from_zero": True}],
    "columns": {}, "headline": {},
}
ENVIRONMENT = {"dememo": "0.1.0", "python": "3.11.7", "torch": "2.14.1", "device": "cpu", "threads": 1,
               "platform": "Linux-x86_64", "wall_seconds": 12.5}


def series(xs, ys, name):
    return {"x_name": name, "x": list(xs), "y": list(ys)}


def cell(track, method, seed, *, dataset="noisy-shapes", forget=None, attack="none", attack_params=None,
         status="ok", metrics=None, series=None, poisoner=None, unlearner=None, target=None):
    attack_name = attack.split("(")[0]
    record = {
        "track": track, "dataset": dataset, "architecture": "small-cnn", "poisoner": poisoner,
        "train_attack": "none" if track == "unlearnability" else None, "unlearner": unlearner, "forget": forget,
        "attack": attack, "method": method, "seed": seed, "status": status,
        "error": {"stage": "unlearn", "message": "diverged"} if status == "failed" else None,
        "metrics": {} if status == "failed" else dict(metrics or {}),
        "params": {"attack": {"name": attack_name, "version": "1", "params": dict(attack_params or {})}},
        "key": f"{track}-{dataset}-{forget}-{method}-{attack}-{seed}",
    }
    if series and status == "ok":
        record["series"] = series
    if target is not None:
        record["interplay_target"] = target
    return record


def unlearnability_cells():
    out = []
    # (method) -> per seed: depth η curve, depth σ curve, test acc, weight-recovery test acc at η = 0.5, 1.0
    rows = {
        "none": ([[0.9, 0.9, 0.9], [0.9, 0.9, 0.9]], [0.9, 0.9], [(0.9, 0.9), (0.9, 0.9)]),
        "em(mode=sample)": ([[0.1, 0.2, 0.5], [0.1, 0.4, None]], [0.1, 0.1], [(0.2, 0.6), (0.4, 0.8)]),
        "tap": ([[0.05, 0.1, 0.2], [0.05, 0.1, 0.2]], [0.05, 0.07], [(0.1, 0.2), (0.1, 0.2)]),
    }
    for method, (eta_curves, accs, recovered) in rows.items():
        for seed in (0, 1):
            out.append(cell("unlearnability", method, seed, poisoner=method, metrics={
                "test_acc": accs[seed], "depth_eta": 0.5, "depth_target": 0.8}, series={
                "depth_eta_curve": series(ETAS, eta_curves[seed], "eta"),
                "depth_sigma_curve": series([0.0, 0.01], [accs[seed], accs[seed] / 2], "sigma")}))
            for eta, acc in zip((0.5, 1.0), recovered[seed]):
                out.append(cell("unlearnability", method, seed, poisoner=method, attack=f"weight-recovery(eta={eta})",
                                attack_params={"eta": eta, "method": "sgd"}, metrics={"test_acc": acc}))
    return out


def unlearning_cells():
    out = []
    for method in ("original", "retrain", "finetune", "gradient-ascent"):
        for seed in (0, 1):
            rk = [1.0, 1.0, 1.0] if method == "retrain" else [0.9, 1.1 + 0.1 * seed, None if seed else 1.3]
            out.append(cell("unlearning", method, seed, dataset="digits", forget="random-10%", unlearner=method,
                            metrics={"forget_acc": 0.9}, series={
                                "depth_eta_curve": series(ETAS, [0.8, 0.9, 1.0], "eta"),
                                "rk_gauss_curve": series(TAUS, rk, "tau"), "rk_pgd_curve": series(TAUS, rk, "tau")}))
    return out


def interplay_cells():
    out = []
    values = {  # (poisoner, unlearner) -> share_clean_gain per seed; absent: not run; "failed": every seed failed
        "share": {("none", "original"): [0.0, 0.0], ("none", "retrain"): [0.05, 0.07], ("none", "finetune"): [0.01, 0.03],
                  ("em", "original"): [0.0, 0.0], ("em", "retrain"): [0.30, 0.40], ("em", "finetune"): [0.20, "failed"],
                  ("tap", "original"): [0.0, 0.0], ("tap", "retrain"): "failed"},
        "clean": {(p, u): [-0.1, -0.2] for p in ("none", "em", "tap") for u in ("original", "retrain", "finetune")},
    }
    for target, pairs in values.items():
        forget = SHARE if target == "share" else CLEAN
        for (p, u), gains in pairs.items():
            for seed in (0, 1):
                gain = "failed" if gains == "failed" else gains[seed]
                out.append(cell("interplay", f"{p} → {u}", seed, forget=forget, poisoner=p, unlearner=u, target=target,
                                status="failed" if gain == "failed" else "ok",
                                metrics={"share_clean_gain": gain, "share_clean_acc": 0.5, "test_acc": 0.8 + 0.02 * seed,
                                         "avg_gap": 0.1},
                                series={"depth_eta_curve": series(ETAS, [0.5, 0.6, 0.7], "eta")}))
    return out


def make_results(cells):
    return assemble(suite=copy.deepcopy(SUITE), environment=dict(ENVIRONMENT), plugins=[], columns=copy.deepcopy(COLUMNS),
                    cells=cells, failures=[])


@pytest.fixture(scope="module")
def results():
    return make_results(unlearnability_cells() + unlearning_cells() + interplay_cells())


@pytest.fixture(scope="module")
def report_dir(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, write_report(results, out)


EXPECTED = {
    "recovery-eta_unlearnability_noisy-shapes", "noise-sigma_unlearnability_noisy-shapes",
    "sweep-weight-recovery-eta-test-acc_unlearnability_noisy-shapes",
    "recovery-eta_unlearning_digits_random-10pct", "residual-knowledge_unlearning_digits_random-10pct",
    *(f"interplay-{c}_noisy-shapes_{f}" for c in ("share-clean-gain", "test-acc", "avg-gap")
      for f in ("owner-50pct-poisoned-forgotten", "clean-10pct-owner-50pct-poisoned")),
    "recovery-eta_interplay_noisy-shapes_owner-50pct-poisoned-forgotten",
    "recovery-eta_interplay_noisy-shapes_clean-10pct-owner-50pct-poisoned",
}


# -- aggregation ----------------------------------------------------------------------------------


def test_aggregate_is_the_mean_over_seeds_and_skips_undefined_points():
    curve = aggregate([{0.0: 0.1, 1.0: 0.2, 2.0: None}, {0.0: 0.1, 1.0: 0.4, 2.0: 0.6}, {0.0: 0.1, 1.0: float("nan")}])
    assert curve.x == (0.0, 1.0, 2.0)
    assert curve.mean[1] == pytest.approx(0.3)  # the NaN of the third seed is left out, not counted as 0
    assert curve.std[1] == pytest.approx(statistics.stdev([0.2, 0.4]))
    assert curve.n == (3, 2, 1) and curve.seeds == 3
    assert curve.mean[2] == pytest.approx(0.6) and curve.std[2] == 0.0
    empty = aggregate([{0.0: None}, {0.0: None}])
    assert empty.mean == (None,) and empty.std == (None,) and empty.n == (0,)


def test_series_by_method_reads_unattacked_successful_cells(results):
    cells = [c for c in results["cells"] if c["track"] == "unlearnability"]
    curves = series_by_method(records(cells), "depth_eta_curve")
    assert set(curves) == {"none", "em(mode=sample)", "tap"}
    em = curves["em(mode=sample)"]
    assert em.x == tuple(ETAS) and em.seeds == 2  # the weight-recovery cells carry no series and are not counted
    assert em.mean == pytest.approx((0.1, 0.3, 0.5)) and em.n == (2, 2, 1)  # η = 1: seed 1 is null -> seed 0 only
    rk = series_by_method(records([c for c in results["cells"] if c["track"] == "unlearning"]), "rk_gauss_curve")
    assert rk["retrain"].mean == (1.0, 1.0, 1.0)
    assert rk["finetune"].mean == pytest.approx((0.9, 1.15, 1.3)) and rk["finetune"].n == (2, 2, 1)
    failed = [dict(c, status="failed") for c in cells]
    assert series_by_method(records(failed), "depth_eta_curve") == {}


def test_sweep_takes_the_unattacked_model_as_strength_zero(results):
    cells = [c for c in results["cells"] if c["track"] == "unlearnability"]
    curves = sweep_by_method(records(cells), "weight-recovery", "eta", "test_acc")
    assert set(curves) == {"none", "em(mode=sample)", "tap"}  # one attack setting (method=sgd): keyed by method
    em = curves["em(mode=sample)"]
    assert em.x == (0.0, 0.5, 1.0)
    assert em.mean == pytest.approx((0.1, 0.3, 0.7)) and em.n == (2, 2, 2)
    without = sweep_by_method(records(cells), "weight-recovery", "eta", "test_acc", from_zero=False)
    assert without["em(mode=sample)"].x == (0.5, 1.0)
    # two settings of the attack besides η: one line per method and setting
    other = [dict(c, attack=c["attack"].replace(")", ", method=adam)")) for c in cells if c["attack"] != "none"]
    both = sweep_by_method(records(cells + other), "weight-recovery", "eta", "test_acc")
    assert "em(mode=sample) · weight-recovery(method=adam)" in both and len(both) == 6


def test_interplay_matrix_means_blanks_and_failures(results):
    cells = [c for c in results["cells"] if c.get("interplay_target") == "share"]
    m = interplay_matrix(records(cells), "share_clean_gain", ["none", "original", "retrain"])
    assert m.rows == ("none", "em", "tap") and m.cols == ("original", "retrain", "finetune")
    v = {(r, c): m.values[i][j] for i, r in enumerate(m.rows) for j, c in enumerate(m.cols)}
    assert v[("none", "retrain")] == pytest.approx(0.06)
    assert v[("em", "retrain")] == pytest.approx(0.35)
    assert v[("em", "finetune")] == pytest.approx(0.20)  # the failed seed is left out of the mean
    assert m.failed[1][2] == 1 and m.cells[1][2] == 2
    assert v[("tap", "retrain")] is None and m.failed[2][1] == 2  # every cell failed
    assert v[("tap", "finetune")] is None and m.cells[2][2] == 0 and m.failed[2][2] == 0  # never run
    plain = interplay_matrix(records(cells), "test_acc")  # no references given: alphabetical
    assert plain.rows == ("em", "none", "tap") and plain.cols == ("finetune", "original", "retrain")
    assert plain.values[1][1] == pytest.approx(0.81) and plain.values[0][0] == pytest.approx(0.80)


# -- figures and files ----------------------------------------------------------------------------


def test_figures_cover_every_group_and_mark_interplay_blanks(results):
    figs = figures(results)
    assert {f.name for f in figs} == EXPECTED
    assert all(isinstance(f, Figure) and f.title and f.caption for f in figs)
    gain = next(f for f in figs if f.name == "interplay-share-clean-gain_noisy-shapes_owner-50pct-poisoned-forgotten")
    texts = [t.get_text() for t in gain.figure.axes[0].texts]
    assert texts.count("failed") == 1  # tap → retrain
    assert "+20.0*" in texts  # em → finetune: one failed seed, mean over the other, in percent with a sign
    assert "+35.0" in texts and "+0.0" in texts
    hatches = [p.get_hatch() for p in gain.figure.axes[0].patches]
    assert hatches.count("//") == 1 and hatches.count("xx") == 1  # not run; every cell failed
    rk = next(f for f in figs if f.name.startswith("residual-knowledge"))
    assert [ax.get_title() for ax in rk.figure.axes] == ["Gaussian noise", "targeted PGD"]


def test_report_files(report_dir, results):
    out, written = report_dir
    names = {p.name for p in written}
    assert names == {f"{n}.{ext}" for n in EXPECTED for ext in ("png", "svg")} | {"report.html"}
    assert all(p.parent == out and p.is_file() for p in written)
    for name in EXPECTED:
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        root = ET.parse(out / f"{name}.svg").getroot()
        assert root.tag.endswith("svg")
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(EXPECTED)
    for bad in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert bad not in page
    for f in figures(results):
        assert html.escape(f.caption) in page and f'alt="{html.escape(f.title)}"' in page
    assert "suite <code>synthetic</code>" in page and "torch 2.14.1" in page
    # the embedded images are the PNG files
    first = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(first) in {(out / f"{n}.png").read_bytes() for n in EXPECTED}


def test_rendering_is_deterministic(report_dir, results, tmp_path):
    out, written = report_dir
    again = write_report(make_results(unlearnability_cells() + unlearning_cells() + interplay_cells()), tmp_path)
    assert [p.name for p in again] == [p.name for p in written]
    for p in written:
        assert (tmp_path / p.name).read_bytes() == p.read_bytes(), p.name


def test_render_html_of_no_figures_is_a_plain_page(results):
    page = render_html(results, [])
    assert page.startswith("<!DOCTYPE html>") and "data:image" not in page


def test_slug_is_file_name_safe():
    assert slug("random-10% (owner-50% poisoned)") == "random-10pct-owner-50pct-poisoned"
    assert slug("em(mode=sample) → finetune") == "em-mode-sample-to-finetune"


# -- command line ---------------------------------------------------------------------------------


def write_results(directory: Path, results) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results))
    return directory


def test_cli_writes_the_report_next_to_the_results(tmp_path, capsys):
    share = [c for c in interplay_cells() if c["interplay_target"] == "share"]
    run = write_results(tmp_path / "run", make_results(share))
    assert cli.main(["report", "--results", str(run)]) == 0
    printed = capsys.readouterr().out.split()
    assert Path(printed[-1]) == run / "report" / "report.html" and (run / "report" / "report.html").is_file()
    assert all(Path(p).is_file() for p in printed) and len(printed) == 2 * 4 + 1  # 3 heat maps + recovery
    # a results.json path works as well, and --out goes where it is told
    assert cli.main(["report", "--results", str(run / "results.json"), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.html").is_file()


def _error(args, capsys) -> str:
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dememo-bench: error: ")
    return err


def test_cli_user_errors(tmp_path, capsys):
    assert "no results at" in _error(["report", "--results", str(tmp_path / "missing")], capsys)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    assert "not a readable results file" in _error(["report", "--results", str(tmp_path / "bad")], capsys)
    write_results(tmp_path / "schema", {"schema": "other/1", "cells": []})
    assert "is not a dememo.results/1 file" in _error(["report", "--results", str(tmp_path / "schema")], capsys)
    plain = [cell("unlearning", "finetune", 0, forget="random-10%", unlearner="finetune", metrics={"forget_acc": 0.5})]
    write_results(tmp_path / "plain", make_results(plain))
    err = _error(["report", "--results", str(tmp_path / "plain")], capsys)
    assert "no depth, interplay or residual-knowledge series" in err
    broken = make_results(plain)
    del broken["cells"][0]["method"]
    write_results(tmp_path / "broken", broken)
    assert "malformed" in _error(["report", "--results", str(tmp_path / "broken")], capsys)
    write_results(tmp_path / "ok", make_results(interplay_cells()[:4]))
    (tmp_path / "file").write_text("")
    assert "cannot write the report" in _error(["report", "--results", str(tmp_path / "ok"), "--out", str(tmp_path / "file")], capsys)
    with pytest.raises(UserError, match="nothing to plot"):
        write_report(make_results(plain), tmp_path / "never")


def test_matplotlib_is_imported_only_when_a_report_is_drawn():
    code = "import sys, dememo.cli, dememo.board.report; print('matplotlib' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


@pytest.mark.slow
def test_report_of_a_real_run(request, tmp_path):
    """The narrowed default suite (the session's ``quick_results``, weight recovery swept over η): the
    report draws its sweep per dataset. Runs only with the tests that already compute that run."""
    others = [i for i in request.session.items if i is not request.node and "quick_results" in getattr(i, "fixturenames", ())]
    if not others:
        pytest.skip("quick_results is computed only for the quick-suite claims; run with them")
    quick_results = request.getfixturevalue("quick_results")
    written = write_report(quick_results, tmp_path)
    names = {p.name for p in written}
    for dataset in ("digits", "noisy-shapes"):
        assert f"sweep-weight-recovery-eta-test-acc_unlearnability_{dataset}.png" in names
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") == (len(written) - 1) // 2


# -- accuracy under weight noise; forgetting vs utility --------------------------------------------


def weight_noise_cells(track, column, forget=None):
    """Two methods, two seeds, unattacked plus weight noise at σ = 0.01 and 0.03 (one null value)."""
    out = []
    values = {"none": [(0.9, 0.8, 0.5), (0.9, 0.7, 0.3)], "em": [(0.2, 0.3, 0.4), (0.2, 0.5, None)]}
    for method, per_seed in values.items():
        for seed, (base, *noisy) in enumerate(per_seed):
            out.append(cell(track, method, seed, forget=forget, poisoner=method, metrics={column: base}))
            for sigma, v in zip((0.01, 0.03), noisy):
                out.append(cell(track, method, seed, forget=forget, poisoner=method, attack=f"weight-noise(sigma={sigma})",
                                attack_params={"sigma": sigma, "draws": 3}, metrics={column: v}))
    return out


def test_weight_noise_curves_read_the_tracks_column_along_sigma():
    from dememo.board.report import declarations

    sweeps = declarations(make_results([])).sweeps["weight-noise"]  # the installed attack's declaration
    column = {t: w["column"] for w in sweeps for t in w["tracks"]}
    assert column == {"unlearnability": "test_acc", "unlearning": "forget_acc"}
    curves = sweep_by_method(records(weight_noise_cells("unlearnability", "test_acc")), "weight-noise", "sigma", column["unlearnability"])
    assert set(curves) == {"none", "em"}
    assert curves["none"].x == (0.0, 0.01, 0.03)  # σ = 0 is the unattacked model
    assert curves["none"].mean == pytest.approx((0.9, 0.75, 0.4))
    assert curves["em"].mean == pytest.approx((0.2, 0.4, 0.4)) and curves["em"].n == (2, 2, 1)
    unlearning = weight_noise_cells("unlearning", "forget_acc", forget="random-10%")
    assert sweep_by_method(records(unlearning), "weight-noise", "sigma", column["unlearning"])["em"].mean == pytest.approx((0.2, 0.4, 0.4))
    assert sweep_by_method(records(unlearning), "weight-noise", "sigma", column["unlearnability"]) == {}  # not there


def scatter_cells():
    # method -> per seed (forget_acc, test_acc); retrain's forget accuracy is 0.80 / 0.70 by seed
    rows = {"original": [(1.0, 0.95), (0.98, 0.93)], "retrain": [(0.80, 0.90), (0.70, 0.92)],
            "finetune": [(0.90, 0.94), (0.90, 0.90)], "gradient-ascent": [(0.60, 0.60), (0.75, 0.80)]}
    out = [cell("unlearning", m, seed, dataset="digits", forget="random-10%", unlearner=m,
                metrics={"forget_acc": fa, "test_acc": ta, "avg_gap": 0.1 * seed})
           for m, per_seed in rows.items() for seed, (fa, ta) in enumerate(per_seed)]
    out.append(cell("unlearning", "finetune", 2, dataset="digits", forget="random-10%", unlearner="finetune", status="failed"))
    return out


def test_forgetting_utility_pairs_each_seed_with_its_retrain():
    from dememo.board.report import scatter

    def forgetting_utility(cells, references):  # the first-party declarations: forget acc against retrain, else Avg Gap
        return scatter(records(cells), references, [("forget_acc", "retrain"), ("avg_gap", None)], "test_acc")

    axis, points = forgetting_utility(scatter_cells(), {"original", "retrain"})
    assert axis == "forget_acc"
    assert [p.method for p in points] == ["original", "retrain", "finetune", "gradient-ascent"]  # references first
    by = {p.method: p for p in points}
    assert by["retrain"].x == 0.0 and by["retrain"].reference and not by["finetune"].reference
    assert by["finetune"].x == pytest.approx(0.15)  # |0.9 − 0.8| and |0.9 − 0.7|: paired by seed, not by mean
    assert by["finetune"].x_std == pytest.approx(statistics.stdev([0.1, 0.2])) and by["finetune"].n == 2
    assert by["gradient-ascent"].x == pytest.approx(0.125) and by["gradient-ascent"].y == pytest.approx(0.70)
    assert by["original"].y_std == pytest.approx(statistics.stdev([0.95, 0.93]))
    # a seed without its own retrain is read against retrain's mean over seeds
    extra = cell("unlearning", "finetune", 5, dataset="digits", forget="random-10%", unlearner="finetune",
                 metrics={"forget_acc": 0.95, "test_acc": 0.9})
    _, points = forgetting_utility(scatter_cells() + [extra], {"original", "retrain"})
    assert next(p for p in points if p.method == "finetune").x == pytest.approx((0.1 + 0.2 + 0.2) / 3)
    # without retrain's forget accuracy the axis is Avg Gap; with neither there is nothing to plot
    no_retrain = [c for c in scatter_cells() if c["method"] != "retrain"]
    axis, points = forgetting_utility(no_retrain, {"original"})
    assert axis == "avg_gap" and next(p for p in points if p.method == "finetune").x == pytest.approx(0.05)
    bare = [dict(c, metrics={"test_acc": 0.9}) for c in no_retrain]
    assert forgetting_utility(bare, {"original"}) == (None, [])


def test_weight_noise_and_scatter_figures_are_drawn():
    cells = weight_noise_cells("unlearnability", "test_acc") + scatter_cells()
    names = {f.name: f for f in figures(make_results(cells))}
    assert {"weight-noise_unlearnability_noisy-shapes", "forgetting-utility_unlearning_digits_random-10pct"} <= set(names)
    scatter = names["forgetting-utility_unlearning_digits_random-10pct"]
    assert "retrain" in scatter.caption and scatter.png()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(scatter.figure.axes[0].lines) >= 4  # one marker per unlearner (the failed seed is left out)
    # a suite that declares the weight-noise curve gets it as a sweep figure, not twice
    declared = make_results(cells)
    declared["suite"]["curves"].append({"attack": "weight-noise", "param": "sigma", "column": "test_acc"})
    names = {f.name for f in figures(declared)}
    assert "sweep-weight-noise-sigma-test-acc_unlearnability_noisy-shapes" in names
    assert not any(n.startswith("weight-noise_") for n in names)


def test_the_environment_line_says_what_the_results_cost_not_a_cached_re_runs_seconds():
    from dememo.board.report import _environment

    cells = [{"track": "unlearning", "dataset": "d", "method": "m", "attack": "none", "seed": 0, "key": "k" * 64,
              "status": "ok", "metrics": {}}] * 40
    warm = {"environment": {"wall_seconds": 2.1, "cells_from_cache": 40, "computed_seconds": 0.0,
                            "compute_seconds": 307.4}, "cells": cells}
    line = _environment(warm)
    assert "compute 307 s (the stages behind these results)" in line
    assert "run time 2 s (40 of 40 cells from the cache)" in line
    cold = {"environment": {"wall_seconds": 107.6, "cells_from_cache": 0, "computed_seconds": 307.4,
                            "compute_seconds": 307.4}, "cells": cells}
    assert "run time 108 s" in _environment(cold) and "from the cache" not in _environment(cold)


def test_the_report_of_partial_results_says_so():
    from dememo.board.report import render_html

    page = render_html({"suite": {"name": "s"}, "cells": [], "partial": {"cells_done": 3, "cells_planned": 9}}, [])
    assert '<p class="partial"><strong>PARTIAL: 3 of 9 cells' in page
    assert "PARTIAL" not in render_html({"suite": {"name": "s"}, "cells": []}, [])
