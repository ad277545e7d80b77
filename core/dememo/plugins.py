"""Plugin discovery and the registry of plugin classes.

Entry points of group ``dememo`` are loaded one at a time, so a plugin that fails to import or to
register is reported by name with its error and the others keep working (pluggy's own
``load_setuptools_entrypoints`` stops at the first failure). Environment switches:

- ``DEMEMO_LOAD_PLUGINS=a,b``: load only these entry points (empty string: load none). For tests.
- ``DEMEMO_BLOCK_PLUGINS=a,b``: load every entry point except these.
- ``DEMEMO_TRACE_PLUGINS=1``: print every hook call and what it registered to stderr.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import attrs
import pluggy

from dememo import hookspecs
from dememo.errors import PluginConflictError, UnknownPluginError
from dememo.families import FAMILIES, Plugin

GROUP = "dememo"
#: the harness's own distribution (its first-party plugins' columns are the suites' protocol)
CORE_DISTRIBUTION = "dememo"


@attrs.frozen
class PluginInfo:
    """Where a registered class came from."""

    cls: type[Plugin]
    family: str
    plugin: str  # entry-point (or registered object) name
    distribution: str
    dist_version: str

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "name": self.cls.name,
            "version": self.cls.version,
            "entry_point": self.plugin,
            "distribution": self.distribution,
            "distribution_version": self.dist_version,
            "summary": self.cls.summary(),
            "params": parameters(self.cls),
            **({"sweeps": [w.to_json() for w in self.cls.sweeps]} if self.family == "attack" else {}),  # type: ignore[attr-defined]
        }


def _type_name(t: Any) -> str:
    if isinstance(t, str):
        return t
    if getattr(t, "__args__", None) is not None or getattr(t, "__origin__", None) is not None:
        return str(t).replace("typing.", "")
    return getattr(t, "__name__", str(t))


def _json_default(value: Any) -> Any:
    """A default as JSON: numbers, strings, booleans and lists of them as they are; ∞ as the string "inf";
    anything else by its repr."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_json_default(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_default(v) for k, v in value.items()}
    return repr(value)


def parameters(cls: type) -> list[dict[str, Any]]:
    """A plugin's hyper-parameters: name, type and default (``required`` when it has none)."""
    if not attrs.has(cls):
        return []
    try:
        attrs.resolve_types(cls)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve is shown as written
        pass
    out = []
    for f in attrs.fields(cls):
        entry: dict[str, Any] = {"name": f.name, "type": _type_name(f.type)}
        if f.default is attrs.NOTHING:
            entry["required"] = True
        elif isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
            entry["default"] = _json_default(f.default.factory() if not f.default.takes_self else None)  # type: ignore[union-attr]
        else:
            entry["default"] = _json_default(f.default)
        out.append(entry)
    return out


@attrs.frozen
class LoadFailure:
    plugin: str
    distribution: str
    error: str
    traceback: str

    def to_json(self) -> dict[str, str]:
        return attrs.asdict(self)


@attrs.define
class Registry:
    """Every registered plugin class by family and name, plus the plugins that failed to load."""

    classes: dict[str, dict[str, PluginInfo]] = attrs.field(factory=lambda: {f: {} for f in FAMILIES})
    failures: list[LoadFailure] = attrs.field(factory=list)

    def get(self, family: str, name: str) -> type[Plugin]:
        try:
            return self.classes[family][name].cls
        except KeyError:
            raise UnknownPluginError(family, name, sorted(self.classes[family])) from None

    def info(self, family: str, name: str) -> PluginInfo:
        self.get(family, name)
        return self.classes[family][name]

    def names(self, family: str) -> list[str]:
        return sorted(self.classes[family])

    def all(self) -> Iterator[PluginInfo]:
        for family in FAMILIES:
            for name in sorted(self.classes[family]):
                yield self.classes[family][name]

    def add(self, info: PluginInfo) -> None:
        base = FAMILIES[info.family]
        cls = info.cls
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"{cls!r} registered as a {info.family} must subclass dememo.{base.__name__}")
        if "__attrs_attrs__" not in cls.__dict__:  # attrs.has() is inherited from the attrs base class
            raise TypeError(f"{cls.__name__} must be an attrs class (decorate it with @attrs.define)")
        if not cls.name or cls.name != cls.name.lower() or " " in cls.name or "_" in cls.name:
            raise TypeError(f"{cls.__name__}.name must be a non-empty kebab-case string, got {cls.name!r}")
        existing = self.classes[info.family].get(cls.name)
        if existing is not None and existing.cls is not cls:
            raise PluginConflictError(
                f"two {info.family}s are named {cls.name!r}: one from {existing.distribution} "
                f"(plugin {existing.plugin!r}), one from {info.distribution} (plugin {info.plugin!r}); "
                f"uninstall one, or set DEMEMO_BLOCK_PLUGINS={info.plugin}"
            )
        self.classes[info.family][cls.name] = info

    def drop_column_clashes(self) -> None:
        """A column key is unique on its track across metrics: results and the board address values by it, so a
        second metric's ``forget_acc`` would pass for the first's. Once every plugin is registered, metrics that
        declare a taken key are dropped, each a load failure naming the others: all of them, unless exactly one
        comes from dememo's own distribution (whose columns are the suites' protocol), which is kept. Load order
        decides nothing."""
        declared: dict[tuple[str, str], list[PluginInfo]] = {}
        for info in self.classes["metric"].values():
            for track in info.cls.tracks:  # type: ignore[attr-defined]
                for col in info.cls.columns:  # type: ignore[attr-defined]
                    declared.setdefault((track, col), []).append(info)
        dropped: dict[str, tuple[PluginInfo, str, str, list[PluginInfo]]] = {}
        for (track, col), infos in declared.items():
            if len(infos) < 2:
                continue
            core = [i for i in infos if i.distribution == CORE_DISTRIBUTION]
            for i in (infos if len(core) != 1 else [i for i in infos if i is not core[0]]):
                dropped.setdefault(i.cls.name, (i, track, col, infos))
        for name, (info, track, col, infos) in sorted(dropped.items()):
            del self.classes["metric"][name]
            others = ", ".join(f"{o.cls.name!r} (from {o.distribution})" for o in infos if o is not info)
            self.failures.append(LoadFailure(
                info.plugin, info.distribution, f"metric {name!r} is not loaded: it declares column {col!r} on track "
                f"{track}, which {others} declares too; a column key is unique on its track (prefix yours with the "
                "metric's name)", ""))


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("DEMEMO_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
        pm.enable_tracing()
    return pm


def load_entry_points(pm: pluggy.PluginManager) -> tuple[dict[str, tuple[str, str]], list[LoadFailure]]:
    """Register every entry point of group ``dememo`` (subject to the env switches) with ``pm``.

    Returns the distribution of each loaded plugin and the failures.
    """
    only, blocked = _env_list("DEMEMO_LOAD_PLUGINS"), set(_env_list("DEMEMO_BLOCK_PLUGINS") or [])
    origins: dict[str, tuple[str, str]] = {}
    failures: list[LoadFailure] = []
    seen: dict[str, str] = {}  # entry-point name -> the distribution whose entry point of that name loads
    names: dict[int, tuple[str, str]] = {}  # parsing a distribution's METADATA costs ms: once per distribution
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        if ep.dist is None:
            dist, version = "unknown", "?"
        else:
            if id(ep.dist) not in names:
                names[id(ep.dist)] = (ep.dist.name, ep.dist.version)
            dist, version = names[id(ep.dist)]
        if ep.name in seen:  # one name, two distributions: the second would silently replace nothing
            if seen[ep.name] != dist:
                failures.append(LoadFailure(ep.name, dist, f"entry point {ep.name!r} of {dist} is not loaded: {seen[ep.name]} "
                                            f"has an entry point of the same name in group {GROUP!r}; rename one "
                                            "(entry-point names are shared by every family)", ""))
            continue
        if (only is not None and ep.name not in only) or ep.name in blocked:
            continue
        seen[ep.name] = dist
        module, registered = None, False
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
            registered = True
            # a misspelled hook (register_poisoner) fails this plugin here, not every plugin in collect()
            unknown = [c.name for c in pm.get_hookcallers(module) or [] if not c.has_spec()]
            if unknown:
                raise pluggy.PluginValidationError(
                    module, f"unknown hook {unknown[0]!r}; dememo's hooks are {', '.join(hookspecs.HOOK_FAMILIES)}"
                )
        except Exception as exc:  # a broken plugin must not take the harness down
            if registered:
                pm.unregister(module)
            failures.append(
                LoadFailure(ep.name, dist, f"Error importing plugin {ep.name!r}: {exc!r}", traceback.format_exc())
            )
            continue
        origins[ep.name] = (dist, version)
    return origins, failures


def collect(pm: pluggy.PluginManager, origins: dict[str, tuple[str, str]] | None = None) -> Registry:
    """Call each registration hook once per plugin, isolating failures per plugin."""
    origins = origins or {}
    registry = Registry()
    pm.check_pending()  # a misspelled hook name (e.g. register_poisoner) is an error, not a silent no-op
    for hook_name, family in hookspecs.HOOK_FAMILIES.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name
            dist, version = origins.get(plugin_name, (_module_dist(impl.plugin), "?"))
            others = [p for p in pm.get_plugins() if p is not impl.plugin]
            found: list[type] = []
            try:
                pm.subset_hook_caller(hook_name, remove_plugins=others)(register=found.append)
                for cls in found:
                    registry.add(PluginInfo(cls, family, plugin_name, dist, version))
            except PluginConflictError:
                raise
            except Exception as exc:
                registry.failures.append(
                    LoadFailure(plugin_name, dist, f"Error registering plugin {plugin_name!r}: {exc}", traceback.format_exc())
                )
    registry.drop_column_clashes()
    return registry


def _module_dist(obj: object) -> str:
    module = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
    return f"(in-process: {module})"


_manager: pluggy.PluginManager | None = None
_registry: Registry | None = None


def get_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with entry points loaded on first use."""
    global _manager, _origins, _failures
    if _manager is None:
        pm = new_manager()
        _origins, _failures = load_entry_points(pm)
        _manager = pm
    return _manager


_origins: dict[str, tuple[str, str]] = {}
_failures: list[LoadFailure] = []


def get_registry() -> Registry:
    """The registry built from the process-wide manager (rebuilt after ``reset`` or registration changes)."""
    global _registry
    if _registry is None:
        pm = get_manager()
        registry = collect(pm, _origins)
        registry.failures[:0] = _failures
        _registry = registry
    return _registry


def invalidate() -> None:
    """Forget the built registry (call after registering or unregistering a plugin object)."""
    global _registry
    _registry = None


def reset() -> None:
    """Forget the manager and registry entirely; the next use reloads entry points."""
    global _manager, _registry
    _manager = None
    _registry = None
