"""Docs stay true: every hook is documented, and CI runs exactly the README's test command."""

from __future__ import annotations

import inspect
import re

import pytest

from dememo import hookspecs

from support import ROOT


@pytest.mark.parametrize("hook", sorted(hookspecs.HOOK_FAMILIES))
def test_every_hook_is_documented_in_contributing(hook):
    text = (ROOT / "CONTRIBUTING.md").read_text()
    assert f"{hook}(register)" in text
    assert "Example" in inspect.getdoc(getattr(hookspecs, hook))


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^(pip install -e '\.\[test\]' && python -m pytest.*)$", readme, flags=re.M)
    assert commands, "the README names its test command"
    assert commands[0].split("#")[0].strip() in ci.splitlines()


def test_the_units_table_gives_the_ranges_verify_checks():
    """CONTRIBUTING's table of column units says exactly what a submission's range check accepts."""
    import math

    from dememo.board.bundle import _range
    from dememo.families import Column

    text = (ROOT / "CONTRIBUTING.md").read_text()
    said = {"[0, 1]": (0.0, 1.0), "[−1, 1] (a difference of two fractions)": (-1.0, 1.0), "≥ 0": (0.0, math.inf),
            "any finite number": (-math.inf, math.inf)}
    units = [u for u in re.findall(r"'(\w+)'", Column.__annotations__["unit"]) if u != "series"]
    assert units == ["fraction", "number", "seconds", "epochs", "count"]
    for unit in units:
        row = re.search(rf"^  \| `{unit}` \|.*$", text, flags=re.M)
        assert row, f"CONTRIBUTING's units table has no row for {unit}"
        cells = [c.strip() for c in row.group(0).strip().strip("|").split("|")]
        assert said[cells[3]] == _range("x", {"unit": unit}), unit
        assert said[cells[4]] == _range("x", {"unit": unit, "signed": True}), unit


def test_readme_quick_start_runs_the_default_suite():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^pip install -e \. && dememo-bench --all", readme, flags=re.M)


def test_the_readmes_export_unlearn_eval_round_trip_runs(tmp_path, monkeypatch):
    """The README's plain-PyTorch unlearning, between `dememo-bench export` and `eval`, run as written (on the
    tiny suite, whose digits model is the quick suite's architecture, to keep it seconds)."""
    import json

    from support import TINY_SUITE, cli

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"^(dememo-bench export .*?)\npython - <<'PY'\n(.*?)\nPY\n(dememo-bench eval .*?)$", readme,
                      flags=re.M | re.S)
    assert block, "the README shows export, a Python unlearning and eval"
    export_line, code, eval_line = block.groups()
    assert "--dataset digits --forget class-0" in export_line and "--out exp" in export_line
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE.replace('[[forget]]\nkind = "random"', '[[forget]]\nkind = "class"\nclasses = [0]\n\n'
                                        '[[forget]]\nkind = "random"', 1))
    monkeypatch.chdir(tmp_path)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    args = export_line.split()[1:]
    args[args.index("quick")] = str(suite)
    assert cli(*args, *cache).returncode == 0
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "unlearned.pt").exists()
    proc = cli(*eval_line.split()[1:], *cache, "--attack", "none", "--metric", "unlearning-accuracy", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "my-finetune" in proc.stdout
    cells = json.loads((tmp_path / "dememo-results" / "eval-my-finetune" / "results.json").read_text())["cells"]
    assert {c["method"] for c in cells} == {"original", "retrain", "my-finetune"}
