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


def test_readme_quick_start_runs_the_default_suite():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^pip install -e \. && dememo-bench --all", readme, flags=re.M)
