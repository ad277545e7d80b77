"""Issue 19: metrics and attacks declare their figures, sweeps and tuning roles; the report and the tuner
only interpret the declarations (a third-party plugin gets the same treatment as a first-party one)."""

from __future__ import annotations

import copy
from typing import ClassVar

import attrs
import pytest

import dememo
from dememo.board.report import declarations, figures
from dememo.errors import UserError
from dememo.results import assemble
from dememo.engine.session import columns_meta
from dememo.engine.tuner import Roles
from dememo.testing import isolated_registry


@attrs.define
class Wobble(dememo.Metric):
    """A third-party metric with a curve."""

    name: ClassVar[str] = "wobble"
    tracks: ClassVar[tuple[str, ...]] = ("unlearnability", "unlearning")
    columns: ClassVar[dict[str, dememo.Column]] = {
        "wobble_curve": dememo.Column("wobble", "info", "wobble at each k", unit="series", plots=(dememo.Plot(
            "wobble", title="wobble along k", x="k (steps)", y="wobble (%)", caption="Wobble of each model.",
            reading="Flatter is better.", line=0.5, line_label="half"),)),
        "wobble_score": dememo.Column("wobble score", "lower", "the score tune minimises",
                                      tuning=dememo.Tuning("wobble", objective=True)),
    }


class Hooks:
    @staticmethod
    @dememo.hookimpl
    def register_metrics(register):
        register(Wobble)


def _results(columns, cells):
    suite = {"name": "s", "references": {"poisoner": ["none"]}, "curves": [], "columns": {}, "headline": {}}
    return assemble(suite=suite, environment={"wall_seconds": 1.0}, plugins=[], columns=columns, cells=cells, failures=[])


def _cell(method, seed, ys):
    return {"track": "unlearnability", "dataset": "d", "architecture": "a", "poisoner": method, "unlearner": None,
            "forget": None, "attack": "none", "method": method, "seed": seed, "status": "ok", "metrics": {},
            "series": {"wobble_curve": {"x_name": "k", "x": [0, 1, 2], "y": ys}}, "key": f"{method}-{seed}"}


def test_a_declared_figure_is_drawn_with_its_declared_texts():
    with isolated_registry(Hooks) as registry:
        meta = columns_meta(registry)
    assert meta["unlearnability"]["wobble_curve"]["plots"][0]["title"] == "wobble along k"
    cells = [_cell("none", s, [0.9, 0.9, 0.9]) for s in (0, 1)] + [_cell("em", s, [0.1, 0.2 + 0.1 * s, 0.3]) for s in (0, 1)]
    figs = figures(_results(meta, cells))
    fig = next(f for f in figs if f.name == "wobble_unlearnability_d")
    assert fig.title == "Unlearnability — d / a: wobble along k"
    assert fig.caption.startswith("Wobble of each model. Flatter is better. Mean over 2 seeds")
    ax = fig.figure.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("k (steps)", "wobble (%)")
    em = next(line for line in ax.lines if line.get_label() == "em")
    assert list(em.get_ydata()) == pytest.approx([10.0, 25.0, 30.0])  # mean over seeds, in percent
    half = next(line for line in ax.lines if line.get_label() == "half")
    assert list(half.get_ydata()) == pytest.approx([50.0, 50.0])
    # without the declaration (a file whose column declares no plot, and no plugin installed that does) no figure
    bare = copy.deepcopy(meta)
    bare["unlearnability"]["wobble_curve"]["plots"] = []
    assert not any(f.name.startswith("wobble") for f in figures(_results(bare, cells)))


def test_declarations_complete_old_files_from_the_installed_plugins():
    old = {"unlearning": {"forget_acc": {"label": "FA", "direction": "match", "unit": "fraction"}}}
    decl = declarations(_results(old, []))
    meta = decl.meta("unlearning", "forget_acc")
    assert meta["label"] == "FA" and meta["long_label"] == "forget-set accuracy"  # the file's own keys win
    assert decl.sweep("weight-recovery", "eta")["column"] == "test_acc"


def test_the_tuner_uses_the_declared_objective():
    with isolated_registry(Hooks) as registry:
        roles = Roles(registry)
    assert (roles.metric, roles.column, roles.key, roles.larger) == ("wobble", "wobble_score", "wobble", False)
    assert roles.recorded == [("wobble", "wobble_score", "wobble")] and roles.metrics == ["wobble"]
    assert "objective: wobble to the paired retrain" in roles.protocol and "smallest mean" in roles.protocol
    with isolated_registry() as empty, pytest.raises(UserError, match="tuning objective"):
        Roles(empty)


def test_first_party_roles_keep_the_tuning_record():
    from dememo import plugins

    roles = Roles(plugins.get_registry())
    assert [r for _, _, r in roles.recorded] == ["forget_acc", "retain_acc", "val_acc", "mia_efficacy", "avg_gap"]
    assert (roles.metric, roles.column) == ("avg-gap", "avg_gap")
