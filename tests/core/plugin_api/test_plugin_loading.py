"""Plugin discovery: one broken plugin is reported by name and never takes the others down; conflicts and
misspelled hooks are errors; hooks are documented."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import textwrap
import types
from typing import ClassVar

import attrs
import pluggy
import pytest

import dememo
from dememo import hookspecs, plugins
from dememo.errors import PluginConflictError, UnknownPluginError
from dememo.families import FAMILIES
from dememo.testing import isolated_registry
from support import ROOT

DESIGN = ROOT.parent / "shared" / "DESIGN.md"


def module(name: str, **hooks) -> types.ModuleType:
    """A throwaway plugin module whose attributes are the given ``@dememo.hookimpl`` functions."""
    mod = types.ModuleType(name)
    for hook, fn in hooks.items():
        fn.__name__ = hook
        setattr(mod, hook, dememo.hookimpl(fn))
    return mod


def registering(*classes):
    def hook(register):
        for cls in classes:
            register(cls)

    return hook


@attrs.define
class Alpha(dememo.Poisoner):
    """Alpha poisoner."""

    name: ClassVar[str] = "alpha"


@attrs.define
class AlphaAgain(dememo.Poisoner):
    """Another poisoner that claims the name alpha."""

    name: ClassVar[str] = "alpha"


@attrs.define
class Beta(dememo.Unlearner):
    """Beta unlearner."""

    name: ClassVar[str] = "beta"


@attrs.define
class Gamma(dememo.Metric):
    """Gamma metric."""

    name: ClassVar[str] = "gamma"


class NotAttrs(dememo.Poisoner):
    """Derives from the (attrs) base but forgot ``@attrs.define``: ``strength`` is not a parameter."""

    name: ClassVar[str] = "not-attrs"
    strength: float = 0.5


@attrs.define
class WrongFamily(dememo.Unlearner):
    """An unlearner registered through the poisoner hook."""

    name: ClassVar[str] = "wrong-family"


@attrs.define
class SnakeName(dememo.Poisoner):
    """A poisoner with a snake_case name."""

    name: ClassVar[str] = "snake_name"


# -- registration through hooks --------------------------------------------------------------------


def test_isolated_registry_registers_each_class_in_its_family():
    a = module("plug_a", register_poisoners=registering(Alpha), register_unlearners=registering(Beta))
    g = module("plug_g", register_metrics=registering(Gamma))
    with isolated_registry(a, g) as reg:
        assert reg.get("poisoner", "alpha") is Alpha
        assert reg.get("unlearner", "beta") is Beta
        assert reg.get("metric", "gamma") is Gamma
        assert reg.info("poisoner", "alpha").plugin == "plug_a"
        assert reg.info("metric", "gamma").distribution == "(in-process: plug_g)"
        assert reg.failures == []
        assert [i.cls for i in reg.all()] == [Alpha, Beta, Gamma]


@pytest.mark.parametrize(("hook", "family"), sorted(hookspecs.HOOK_FAMILIES.items()))
def test_hook_registers_into_its_family(hook, family):
    base = FAMILIES[family]
    cls = attrs.define(type(f"Probe{family.title()}", (base,), {"__doc__": "A probe.", "name": f"probe-{family}",
                                                                  "__annotations__": {"name": "ClassVar[str]"}}))
    with isolated_registry(module("probe", **{hook: registering(cls)})) as reg:
        assert reg.names(family) == [f"probe-{family}"]
        assert all(reg.names(f) == [] for f in FAMILIES if f != family)


def test_unknown_name_suggests_the_closest_registered_one():
    with isolated_registry(module("plug_a", register_poisoners=registering(Alpha))) as reg:
        with pytest.raises(UnknownPluginError, match=r"unknown poisoner 'alpah' \(did you mean 'alpha'\?\)"):
            reg.get("poisoner", "alpah")


def test_misspelled_hook_name_is_an_error_not_a_silent_no_op():
    bad = module("typo_plugin", register_poisoner=registering(Alpha))  # missing the final "s"
    with pytest.raises(pluggy.PluginValidationError, match="register_poisoner"):
        with isolated_registry(bad):
            pass


def test_two_classes_with_one_name_raise_a_conflict_naming_both_plugins():
    one = module("plugin_one", register_poisoners=registering(Alpha))
    two = module("plugin_two", register_poisoners=registering(AlphaAgain))
    with pytest.raises(PluginConflictError) as exc:
        with isolated_registry(one, two):
            pass
    msg = str(exc.value)
    assert "'alpha'" in msg and "plugin_one" in msg and "plugin_two" in msg
    assert "DEMEMO_BLOCK_PLUGINS" in msg and "\n" not in msg


def test_registering_the_same_class_twice_is_not_a_conflict():
    one = module("plugin_one", register_poisoners=registering(Alpha))
    two = module("plugin_two", register_poisoners=registering(Alpha))
    with isolated_registry(one, two) as reg:
        assert reg.get("poisoner", "alpha") is Alpha and reg.failures == []


def test_a_raising_hook_is_recorded_and_other_plugins_still_register():
    def explode(register):
        raise RuntimeError("kaboom")

    broken = module("broken_plugin", register_poisoners=explode, register_metrics=registering(Gamma))
    good = module("good_plugin", register_poisoners=registering(Alpha), register_unlearners=registering(Beta))
    with isolated_registry(broken, good) as reg:
        assert reg.names("poisoner") == ["alpha"] and reg.names("unlearner") == ["beta"]
        assert reg.names("metric") == ["gamma"]  # the broken plugin's other hooks still count
        [failure] = reg.failures
        assert failure.plugin == "broken_plugin"
        assert "Error registering plugin 'broken_plugin'" in failure.error and "kaboom" in failure.error
        assert "RuntimeError" in failure.traceback
        assert failure.to_json()["plugin"] == "broken_plugin"


@pytest.mark.parametrize(("cls", "why"), [
    (NotAttrs, "must be an attrs class"),
    (WrongFamily, "must subclass dememo.Poisoner"),
    (SnakeName, "kebab-case"),
    (int, "must subclass dememo.Poisoner"),
    ("alpha", "must subclass dememo.Poisoner"),
])
def test_malformed_class_is_a_recorded_failure(cls, why):
    bad = module("bad_plugin", register_poisoners=registering(cls))
    good = module("good_plugin", register_unlearners=registering(Beta))
    with isolated_registry(bad, good) as reg:
        [failure] = reg.failures
        assert failure.plugin == "bad_plugin" and why in failure.error
        assert reg.names("poisoner") == [] and reg.names("unlearner") == ["beta"]


def test_trace_switch_prints_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv("DEMEMO_TRACE_PLUGINS", "1")
    with isolated_registry(module("traced", register_poisoners=registering(Alpha))):
        pass
    assert "register_poisoners" in capsys.readouterr().err


# -- entry points ----------------------------------------------------------------------------------

GOOD = """
from typing import ClassVar
import attrs
import dememo

@attrs.define
class Delta(dememo.Attack):
    '''Delta attack from an entry point.'''
    name: ClassVar[str] = "delta"

@dememo.hookimpl
def register_attacks(register):
    register(Delta)
"""


@pytest.fixture
def entry_points(tmp_path, monkeypatch):
    """Entry points of group ``dememo``: ``good`` works, ``broken`` raises ImportError on import, ``missing``
    names an attribute that does not exist."""
    (tmp_path / "dememo_test_good_plugin.py").write_text(textwrap.dedent(GOOD))
    (tmp_path / "dememo_test_broken_plugin.py").write_text("raise ImportError('needs a package that is not installed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [
        importlib.metadata.EntryPoint("good", "dememo_test_good_plugin", plugins.GROUP),
        importlib.metadata.EntryPoint("broken", "dememo_test_broken_plugin", plugins.GROUP),
        importlib.metadata.EntryPoint("missing", "dememo_test_good_plugin:nothing_here", plugins.GROUP),
        importlib.metadata.EntryPoint("good", "dememo_test_broken_plugin", plugins.GROUP),  # duplicate name
    ]

    def fake(**kwargs):
        assert kwargs == {"group": plugins.GROUP}
        return list(eps)

    monkeypatch.setattr(plugins.metadata, "entry_points", fake)
    for var in ("DEMEMO_LOAD_PLUGINS", "DEMEMO_BLOCK_PLUGINS", "DEMEMO_TRACE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    return eps


def load():
    pm = plugins.new_manager()
    origins, failures = plugins.load_entry_points(pm)
    return pm, origins, failures


def test_broken_entry_point_is_reported_by_name_and_the_good_one_registers(entry_points):
    pm, origins, failures = load()
    by_name = {f.plugin: f for f in failures}
    assert set(by_name) == {"broken", "missing"}
    assert "Error importing plugin 'broken'" in by_name["broken"].error
    assert "needs a package that is not installed" in by_name["broken"].error
    assert "ImportError" in by_name["broken"].traceback
    assert "Error importing plugin 'missing'" in by_name["missing"].error
    assert set(origins) == {"good"} and origins["good"] == ("unknown", "?")
    reg = plugins.collect(pm, origins)
    assert reg.get("attack", "delta").__module__ == "dememo_test_good_plugin"
    assert reg.info("attack", "delta").plugin == "good"


def test_load_plugins_env_loads_only_the_named(entry_points, monkeypatch):
    monkeypatch.setenv("DEMEMO_LOAD_PLUGINS", "good")
    _, origins, failures = load()
    assert set(origins) == {"good"} and failures == []
    monkeypatch.setenv("DEMEMO_LOAD_PLUGINS", " broken , good ")
    _, origins, failures = load()
    assert set(origins) == {"good"} and [f.plugin for f in failures] == ["broken"]


def test_empty_load_plugins_env_loads_none(entry_points, monkeypatch):
    monkeypatch.setenv("DEMEMO_LOAD_PLUGINS", "")
    pm, origins, failures = load()
    assert origins == {} and failures == []
    assert all(plugins.collect(pm).names(f) == [] for f in FAMILIES)


def test_block_plugins_env_skips_the_named(entry_points, monkeypatch):
    monkeypatch.setenv("DEMEMO_BLOCK_PLUGINS", "broken,missing")
    pm, origins, failures = load()
    assert set(origins) == {"good"} and failures == []
    monkeypatch.setenv("DEMEMO_BLOCK_PLUGINS", "good")
    _, origins, failures = load()
    assert "good" not in origins and {f.plugin for f in failures} == {"broken", "missing"}


def test_process_registry_keeps_working_with_a_broken_entry_point(entry_points, monkeypatch):
    for name in ("_manager", "_registry", "_origins", "_failures"):
        monkeypatch.setattr(plugins, name, getattr(plugins, name))  # restored after the test
    plugins.reset()
    reg = plugins.get_registry()
    assert reg.names("attack") == ["delta"]
    assert {f.plugin for f in reg.failures} == {"broken", "missing"}
    assert plugins.get_registry() is reg  # built once
    plugins.invalidate()
    assert plugins.get_registry() is not reg


def test_first_party_plugins_load_through_entry_points_without_failures():
    reg = plugins.get_registry()
    assert reg.failures == []
    infos = list(reg.all())
    assert infos and all(i.distribution == "dememo" for i in infos)
    assert all(i.to_json()["summary"] for i in infos)


# -- hook documentation (datasette style) ----------------------------------------------------------

HOOKSPECS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
                   if hasattr(fn, "dememo_spec"))


def test_every_hookspec_maps_to_a_family_and_back():
    assert HOOKSPECS == sorted(hookspecs.HOOK_FAMILIES)
    assert sorted(hookspecs.HOOK_FAMILIES.values()) == sorted(FAMILIES)


@pytest.mark.parametrize("name", HOOKSPECS)
def test_hookspec_is_documented_with_an_example(name):
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    assert "Example" in doc and f"def {name}(register)" in doc and "@dememo.hookimpl" in doc
    assert list(inspect.signature(fn).parameters) == ["register"]


@pytest.mark.parametrize("name", HOOKSPECS)
def test_hookspec_is_listed_in_design(name):
    if not DESIGN.exists():
        pytest.skip(f"{DESIGN} is not part of this checkout")
    assert re.search(rf"def {name}\(register\)", DESIGN.read_text())


def test_two_distributions_with_one_entry_point_name_load_one_and_say_so(tmp_path, monkeypatch):
    """Entry-point names are shared by every family: a second distribution using a name (``dememo-bench new
    poisoner finetune`` once wrote one) is a load failure that names both, not a silent skip."""
    for dist in ("dememo-first", "dememo-second"):
        info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[dememo]\nsame = {dist.replace('-', '_')}\n")
        (tmp_path / f"{dist.replace('-', '_')}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DEMEMO_LOAD_PLUGINS", "same")
    pm, origins, failures = load()
    assert origins["same"][0] == "dememo-first"
    [failure] = [f for f in failures if f.plugin == "same"]
    assert failure.distribution == "dememo-second" and "dememo-first has an entry point of the same name" in failure.error


def test_metrics_declaring_one_column_are_dropped_whatever_the_order_unless_one_is_dememos():
    from dememo.testing import isolated_registry, registered
    from dememo_plugins.metrics import tow

    def metric(name, column):
        @attrs.define
        class M(dememo.Metric):
            """A metric."""
            columns: ClassVar[dict] = {column: dememo.Column("x", "higher", "d")}

            def compute(self, ev, ctx):
                return {}
        M.name = name
        return M

    class Taker:  # registers before tow in any order: "aaa" sorts first
        @dememo.hookimpl
        def register_metrics(self, register):
            register(metric("aaa-mine", "tow"))
            register(metric("aaa-other", "aaa_other"))

    with isolated_registry(Taker(), tow) as registry:  # neither is from dememo's distribution: both go
        assert registry.names("metric") == ["aaa-other", "tow-mia"]  # nothing else is lost
        errors = sorted(f.error for f in registry.failures)
        assert len(errors) == 2 and "metric 'aaa-mine' is not loaded: it declares column 'tow' on track" in errors[0]
        assert "which 'tow' (from" in errors[0] and "a column key is unique on its track" in errors[1]
    with registered(Taker()):  # beside the installed first party, the newcomer alone is dropped
        registry = plugins.get_registry()
        assert {"tow", "tow-mia", "aaa-other"} <= set(registry.names("metric")) and "aaa-mine" not in registry.names("metric")
        assert any("'aaa-mine' is not loaded" in f.error and "'tow' (from dememo)" in f.error for f in registry.failures)
