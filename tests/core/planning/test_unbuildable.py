"""One installed plugin that cannot be built from its own defaults (a required parameter without a default)
leaves an unnarrowed run: it is skipped with a note that says how to give the parameter, and every other
plugin still runs. Named with a filter, or given parameters by the suite or ``--set``, it is built as usual
and its error is the run's."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest

import dememo
from dememo import plugins
from dememo.errors import ParameterError
from dememo.planning.planner import Filters, Planner
from dememo.planning.suite import load_suite
from dememo.testing import registered


@attrs.define
class NeedsAlpha(dememo.Unlearner):
    """A method whose ``alpha`` has no default."""

    name: ClassVar[str] = "needs-alpha"
    alpha: float

    def unlearn(self, model, task, ctx):
        return model


class Plugin:
    @dememo.hookimpl
    def register_unlearners(self, register):
        register(NeedsAlpha)


def methods(planner, **given):
    return {c.method for c in planner.cells(Filters(**{k: tuple(v) for k, v in given.items()}), seeds=1)
            if c.track == "unlearning"}


def test_an_unnamed_plugin_without_defaults_is_skipped_with_a_note_and_the_rest_plan():
    with registered(Plugin()):
        planner = Planner(plugins.get_registry(), load_suite("quick"))
        rows = methods(planner, dataset=["digits"], forget=["random-10%"])
        assert "needs-alpha" not in {r.split("(")[0] for r in rows} and {"original", "retrain", "scrub"} <= rows
        note = planner.skipped[("unlearner", "needs-alpha")]
        assert "cannot be built from its defaults" in note and "alpha" in note
        assert "--set needs-alpha.alpha=VALUE" in note and "\n" not in note


def test_named_or_given_parameters_it_is_built_and_a_missing_one_is_the_error():
    with registered(Plugin()):
        planner = Planner(plugins.get_registry(), load_suite("quick"))
        with pytest.raises(ParameterError, match="alpha"):
            methods(planner, unlearner=["needs-alpha"])
        given = Planner(plugins.get_registry(), load_suite("quick"), {"needs-alpha": {"alpha": 0.5}})
        assert "needs-alpha(alpha=0.5)" in methods(given, unlearner=["needs-alpha"], forget=["random-10%"])
        assert not given.skipped


def test_an_unfiltered_run_warns_and_plans_the_others(tiny_suite, tmp_path):
    from support import cli

    with registered(Plugin()):
        proc = cli("--all", "--dry-run", "--suite", str(tiny_suite), "--seeds", "1", "--cache-dir", str(tmp_path / "c"))
        named = cli("--all", "--dry-run", "--suite", str(tiny_suite), "--unlearner", "needs-alpha",
                    "--cache-dir", str(tmp_path / "c"))
    assert proc.returncode == 0, proc.stderr
    assert "warning: unlearner 'needs-alpha'" in proc.stderr and "skipped: unlearner 'needs-alpha'" in proc.stdout
    assert named.returncode == 2 and "needs parameter 'alpha', which has no default" in named.stderr
