"""Expand a suite and the installed plugins into cells.

A *configured* plugin is a class plus its resolved parameters. Parameters are layered, later wins:
class defaults < suite ``params`` < the dataset entry's ``plugin_params`` < suite ``variants`` (each
variant is its own row, labelled by its keys; a variant's ``with`` table sets parameters of that row only,
kept out of its label like suite ``params``) < ``--set``.
Filters (``--poisoner`` …) narrow a family; the suite's ``references`` (e.g. ``none``, ``retrain``) stay,
so every table keeps its reference rows. A poisoner filter alone selects the unlearnability track, an
unlearner filter alone the unlearning track; both together (or none) keep the interplay track as well
(poisoner × unlearner on a data owner's poisoned share, ``Suite.interplay``).
"""

from __future__ import annotations

from typing import Any

import attrs

from dememo.errors import ParameterError, UnknownPluginError, UserError, did_you_mean
from dememo.families import Plugin, Track
from dememo.hashing import digest
from dememo.params import build, field_names, parse_label, printable, required
from dememo.planning.suite import DatasetEntry, ForgetSpec, Interplay, Suite
from dememo.plugins import Registry


@attrs.frozen(eq=False)
class Configured:
    """A plugin class with resolved hyper-parameters."""

    family: str
    obj: Plugin
    #: the parameters that distinguish this row within its suite (variant keys, ``--set`` overrides);
    #: suite-wide choices are recorded in the results, not repeated in every label
    show: tuple[str, ...] = ()
    #: a row label given by the user instead of the one made from name and parameters (an external model's)
    alias: str | None = None

    @property
    def name(self) -> str:
        return self.obj.name

    @property
    def label(self) -> str:
        if self.alias:
            return self.alias
        params = self.obj.params()
        shown = ", ".join(f"{k}={params[k]}" for k in self.show if k in params)
        return f"{self.obj.name}({shown})" if shown else self.obj.name

    def spec(self) -> dict[str, Any]:
        """Identity for cache keys: name, version and parameters."""
        return {"name": self.obj.name, "version": self.obj.version, "params": self.obj.params()}


@attrs.frozen(eq=False)
class DatasetConfig:
    entry: DatasetEntry
    dataset: Configured
    architecture: Configured
    budgets: dict[str, float]

    @property
    def name(self) -> str:
        return self.entry.name

    def spec(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.spec(),
            "architecture": self.architecture.spec(),
            "recipe": self.entry.recipe.spec(),
            "budgets": self.budgets,
        }


@attrs.frozen(eq=False)
class Cell:
    track: Track
    data: DatasetConfig
    seed: int
    attack: Configured
    metrics: list[Configured]
    poisoner: Configured | None = None
    train_attack: Configured | None = None
    unlearner: Configured | None = None
    forget: ForgetSpec | None = None
    #: how the unlearner's parameters were chosen (recorded in the results; not part of the key)
    selection: dict[str, Any] | None = None
    #: interplay track: the suite's owner-share setting and what is forgotten ("share" or "clean")
    owner: Interplay | None = None
    target: str | None = None

    def config(self) -> dict[str, Any]:
        """Everything that defines the cell; its digest is the cell key."""
        pick = lambda c: c.spec() if c is not None else None  # noqa: E731
        return {
            "track": self.track,
            "data": self.data.spec(),
            "seed": self.seed,
            "poisoner": pick(self.poisoner),
            "train_attack": pick(self.train_attack),
            "unlearner": pick(self.unlearner),
            "forget": self.forget.to_json() if self.forget else (self.owner.to_json(self.target) if self.owner else None),
            "attack": self.attack.spec(),
            "metrics": [m.spec() for m in self.metrics],
        }

    @property
    def key(self) -> str:
        return digest(self.config())

    @property
    def forget_label(self) -> str | None:
        if self.owner is not None:
            assert self.target is not None
            return self.owner.forget_label(self.target)
        return self.forget.label() if self.forget else None

    @property
    def method(self) -> str:
        """The row label: poisoner (+ train attack), unlearner, or on the interplay track
        ``poisoner → unlearner``."""
        if self.track == "interplay":
            assert self.poisoner is not None and self.unlearner is not None
            return f"{self.poisoner.label} → {self.unlearner.label}"
        if self.track == "unlearnability":
            assert self.poisoner is not None and self.train_attack is not None
            if self.train_attack.name == "none":
                return self.poisoner.label
            return f"{self.poisoner.label} + {self.train_attack.label}"
        assert self.unlearner is not None
        return self.unlearner.label


@attrs.frozen
class Filters:
    """What a run is narrowed to. Names within one filter are alternatives (``--unlearner a --unlearner b``:
    either); filters of different kinds all apply. Plugin filters keep the suite's reference rows.
    ``track`` names the tracks to plan; left empty, it follows from the plugin filters (see the module)."""

    poisoner: tuple[str, ...] = ()
    unlearner: tuple[str, ...] = ()
    attack: tuple[str, ...] = ()
    metric: tuple[str, ...] = ()
    dataset: tuple[str, ...] = ()
    forget: tuple[str, ...] = ()
    track: tuple[str, ...] = ()


def own_label(unlearner: str) -> str:
    """How a cell records that its unlearner's values came from the unlearner's own tuning file (a name, not
    the machine's path)."""
    return f"{unlearner}.json (its own tuning file, dememo-bench tune)"


class Planner:
    def __init__(self, registry: Registry, suite: Suite, sets: dict[str, dict[str, Any]] | None = None,
                 own_tuning: bool | dict[str, dict[str, Any]] = True):
        """``own_tuning``: read unlearners' own tuning files (``own_tuning``) when True; never when False (a
        verifier plans a bundle as the suite plans it, whatever files its machine holds); or the records to
        use, by unlearner (a worker re-plans with what its driver read: ``tuning_records``)."""
        self.registry = registry
        self.suite = suite
        self.sets = sets or {}
        self.read_own_tuning = own_tuning is True
        #: (family, name) -> why an unnamed plugin is left out of the plan (``buildable``)
        self.skipped: dict[tuple[str, str], str] = {}
        #: what the run should know about its plan (a plugin's tuning file that is not used, and why)
        self.notes: list[str] = []
        self._own_tuning: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
        if isinstance(own_tuning, dict):
            self._own_tuning = {name: (record, own_label(name)) for name, record in own_tuning.items()}
        self._check_sets()

    # -- parameters --------------------------------------------------------------------------------

    def _check_sets(self) -> None:
        """Every ``--set`` target must name a plugin (or ``recipe``) that has that parameter."""
        from dememo.training import Recipe

        for target, params in self.sets.items():
            if target == "recipe":
                classes = [Recipe]
            else:
                classes = [
                    self.registry.classes[f][target].cls for f in self.registry.classes if target in self.registry.classes[f]
                ]
                if not classes:
                    known = sorted({n for fam in self.registry.classes.values() for n in fam} | {"recipe"})
                    raise UnknownPluginError("plugin", target, known)
            for param in params:
                if not any(param in field_names(c) for c in classes):
                    names = sorted({n for c in classes for n in field_names(c)})
                    hint = did_you_mean(param, names)
                    raise ParameterError(printable(
                        f"--set {target}.{param}: {target} has no parameter {param!r}{hint}; "
                        f"parameters: {', '.join(names) or 'none'}"
                    ))

    def configure(self, family: str, name: str, extra: dict[str, Any] | None = None,
                  entry: DatasetEntry | None = None) -> list[Configured]:
        """Every variant of plugin ``name`` with layered parameters (deduplicated by label)."""
        cls = self.registry.get(family, name)
        fam = family if family in ("poisoner", "unlearner", "attack", "metric") else None
        base = dict(self.suite.params.get(fam, {}).get(name, {})) if fam else {}
        if fam and entry is not None:
            base.update(entry.plugin_params.get(fam, {}).get(name, {}))
        base.update(extra or {})
        sets = {k: v for k, v in self.sets.get(name, {}).items() if k in field_names(cls)}
        variants = (self.suite.variants.get(fam, {}).get(name) if fam else None) or [{}]
        out: dict[str, Configured] = {}
        for i, variant in enumerate(variants):
            path = f"$.{name}" if len(variants) == 1 else f"$.{name}[{i}]"
            # ``with``: parameters of this variant only, recorded like suite params but not part of its label
            variant = dict(variant)
            hidden = variant.pop("with", {})
            if not isinstance(hidden, dict):
                raise UserError(f"suite variants.{fam}.{name}[{i}].with must be a table of parameters "
                                f"(with = {{ param = value }}), got {hidden!r}")
            if hidden:  # an unknown or bad key names the with-table
                build(cls, {**base, **{k: v for k, v in variant.items() if k in required(cls)}, **sets, **hidden},
                      f"{path}.with")
            obj = build(cls, {**base, **hidden, **variant, **sets}, path)
            shown = (sorted(variant) if len(variants) > 1 else []) + sorted(k for k in sets if k not in variant)
            configured = Configured(family, obj, tuple(shown))
            first = out.setdefault(configured.label, configured)
            # two suite variants whose labels agree must not differ (only --set may merge rows on purpose)
            if first is not configured and not sets and first.obj.params() != obj.params():
                raise UserError(f"suite variants.{fam}.{name}: two variants are both labelled "
                                f"{configured.label!r} but differ in their `with` parameters; give each a "
                                f"distinguishing key outside `with`")
        return list(out.values())

    def single(self, family: str, name: str, params: dict[str, Any], entry: DatasetEntry | None = None) -> Configured:
        """One plugin with the suite's parameters for it (and the dataset's), then ``--set``, then ``params``;
        the suite's variants are not expanded. How a method that composes others builds them."""
        cls = self.registry.get(family, name)
        base = dict(self.suite.params.get(family, {}).get(name, {}))  # type: ignore[call-overload]
        if entry is not None:
            base.update(entry.plugin_params.get(family, {}).get(name, {}))
        base.update({k: v for k, v in self.sets.get(name, {}).items() if k in field_names(cls)})
        base.update(params)
        return Configured(family, build(cls, base, f"$.{name}"), tuple(sorted(params)))

    def scorer_class(self, name: str) -> type:
        """The metric plugin ``name``, which must be a ``dememo.Scorer`` (it provides per-sample scores)."""
        from dememo.errors import UserError
        from dememo.families import Scorer

        cls = self.registry.get("metric", name)
        if not issubclass(cls, Scorer):
            scorers = [n for n in self.registry.names("metric") if issubclass(self.registry.get("metric", n), Scorer)]
            raise UserError(f"metric {name!r} gives no per-sample memorization scores; scorers: {', '.join(scorers) or 'none'}")
        return cls

    def dataset_config(self, entry: DatasetEntry) -> DatasetConfig:
        from dememo.training import Recipe

        dataset = self.configure("dataset", entry.source, entry.params)[0]
        arch = self.configure("architecture", entry.architecture, entry.architecture_params)[0]
        recipe = entry.recipe
        if "recipe" in self.sets:
            merged = {**attrs.asdict(recipe), **self.sets["recipe"]}
            recipe = build(Recipe, merged, "$.recipe")
        budgets = {**type(dataset.obj).budgets, **entry.budgets}
        return DatasetConfig(attrs.evolve(entry, recipe=recipe), dataset, arch, budgets)

    # -- expansion ---------------------------------------------------------------------------------

    def _mentioned(self, family: str, name: str) -> bool:
        """Whether the suite or ``--set`` gives plugin ``name`` any parameter (then a bad one is the user's error)."""
        return (name in self.sets or name in self.suite.params.get(family, {})  # type: ignore[call-overload]
                or name in self.suite.variants.get(family, {})  # type: ignore[call-overload]
                or any(name in e.plugin_params.get(family, {}) for e in self.suite.datasets))

    def buildable(self, family: str, name: str) -> bool:
        """Whether a plugin nobody named or configured can be built from its own defaults. One that cannot (a
        required parameter without a default, a default its own checks refuse) is left out of an unnarrowed
        run with a note in ``skipped``, so that one installed plugin cannot stop every other run; named with a
        filter, or given parameters by the suite or ``--set``, its error is raised as usual."""
        if self._mentioned(family, name):
            return True
        cls = self.registry.get(family, name)
        try:
            build(cls, {}, f"$.{name}")
        except Exception as exc:  # a plugin's own checks may raise anything: it stops this plugin, not the run
            info = self.registry.info(family, name)
            self.skipped[(family, name)] = printable(
                f"{family} {name!r} (from {info.distribution}) is left out, as it cannot be built from its defaults: "
                f"{exc if isinstance(exc, ParameterError) else f'{type(exc).__name__}: {exc}'}")
            return False
        return True

    def _names(self, family: str, wanted: tuple[str, ...]) -> list[str]:
        for name in wanted:
            self.registry.get(family, name)  # unknown names fail before any work
        names = self.registry.names(family)
        if not wanted:  # a narrowed family plans only what it names (and the references)
            return [n for n in names if family not in ("poisoner", "unlearner", "attack", "metric")
                    or self.buildable(family, n)]
        refs = self.suite.references.get(family, [])  # type: ignore[call-overload]
        chosen = set(wanted)
        if family == "metric":  # a metric computed from others (avg-gap uses mia-efficacy) brings them along
            todo = list(chosen)
            while todo:
                for used in getattr(self.registry.get("metric", todo.pop()), "uses", ()):
                    if used in names and used not in chosen:
                        chosen.add(used)
                        todo.append(used)
        return [n for n in names if n in chosen or n in refs]

    def tracks(self, filters: Filters = Filters()) -> list[str]:
        """The tracks a run plans: those named by ``filters.track`` (each must be one of the suite's), else the
        suite's, less those a plugin filter rules out (a poisoner filter alone: unlearnability only; an
        unlearner filter alone: unlearning only)."""
        tracks = list(self.suite.tracks)
        if filters.track:
            for name in filters.track:
                if name not in tracks:
                    raise UserError(f"--track {name!r}{did_you_mean(name, tracks)}: suite {self.suite.name!r} has the "
                                    f"tracks {', '.join(tracks)}")
            return [t for t in tracks if t in filters.track]
        if filters.poisoner and not filters.unlearner:
            tracks = [t for t in tracks if t == "unlearnability"]
        if filters.unlearner and not filters.poisoner:
            tracks = [t for t in tracks if t == "unlearning"]
        return tracks

    def _datasets(self, filters: Filters) -> list[DatasetEntry]:
        names = [e.name for e in self.suite.datasets]
        for name in filters.dataset:
            if name not in names:
                raise UserError(f"--dataset {name!r}{did_you_mean(name, names)}: suite {self.suite.name!r} has the "
                                f"datasets {', '.join(names)}")
        return [e for e in self.suite.datasets if not filters.dataset or e.name in filters.dataset]

    def _forget_sets(self, filters: Filters) -> tuple[list[ForgetSpec], list[str]]:
        """The unlearning track's forget sets and the interplay track's targets that ``filters.forget`` keeps
        (a forget-set label such as ``class-0`` or ``random-10%``, or an interplay target ``share``/``clean``)."""
        labels = [f.label() for f in self.suite.forget]
        targets = list(self.suite.interplay.targets)
        for name in filters.forget:
            if name not in labels and name not in targets:
                known = labels + [t for t in targets if "interplay" in self.suite.tracks]
                raise UserError(f"--forget {name!r}{did_you_mean(name, known)}: suite {self.suite.name!r} has the "
                                f"forget sets {', '.join(known)}")
        if not filters.forget:
            return list(self.suite.forget), targets
        return ([f for f in self.suite.forget if f.label() in filters.forget],
                [t for t in targets if t in filters.forget])

    def cells(self, filters: Filters = Filters(), seeds: int | None = None) -> list[Cell]:
        seeds = self.suite.seeds if seeds is None else seeds
        tracks = self.tracks(filters)
        datasets = self._datasets(filters)
        forget_sets, targets = self._forget_sets(filters)
        if filters.forget:  # a forget set names the tracks that have one
            tracks = [t for t in tracks if t != "unlearnability"]
            if not tracks:
                raise UserError("--forget names forget sets of the unlearning and interplay tracks; the "
                                "unlearnability track has none (leave out --forget or --track unlearnability)")
        names = {f: self._names(f, getattr(filters, f)) for f in ("attack", "metric", "poisoner", "unlearner")}
        if "unlearning" in tracks:
            for spec in forget_sets:
                if spec.kind == "memorization":
                    self.scorer_class(spec.scorer)  # an unknown scorer fails before any work
        out: list[Cell] = []
        for entry in datasets:
            data = self.dataset_config(entry)
            attacks, metrics, poisoners = (
                [c for n in names[f] for c in self.configure(f, n, entry=entry)]
                for f in ("attack", "metric", "poisoner")
            )
            tuned = {(spec.label(), n): self.unlearners_for(entry, spec, n) for spec in forget_sets for n in names["unlearner"]}
            interplay = self._interplay_unlearners(entry, names["unlearner"]) if "interplay" in tracks and targets else []
            for seed in range(seeds):
                if "unlearnability" in tracks:
                    out += self._unlearnability(data, seed, poisoners, attacks, metrics, filters)
                if "unlearning" in tracks:
                    out += self._unlearning(data, seed, tuned, attacks, metrics, forget_sets)
                if interplay:
                    out += self._interplay(data, seed, poisoners, interplay, attacks, metrics, filters, targets)
        return out

    def unlearning_cells(self, unlearner: Configured, selection: dict[str, Any], filters: Filters = Filters(),
                         seeds: int | None = None, replays: bool = True) -> list[Cell]:
        """The unlearning track's cells of one configured unlearner that no installed plugin provides (an
        external model, ``dememo.engine.external``): every forget set, attack and metric the suite gives an
        unlearner, narrowed by ``filters``' dataset, forget-set, attack and metric names. ``replays=False``
        leaves out the metrics that re-run the unlearner on shadow models (``Metric.replays``): an external
        model cannot be re-run."""
        seeds = self.suite.seeds if seeds is None else seeds
        forget_sets, _ = self._forget_sets(filters)
        names = {f: self._names(f, getattr(filters, f)) for f in ("attack", "metric")}
        out: list[Cell] = []
        for entry in self._datasets(filters):
            data = self.dataset_config(entry)
            attacks, metrics = ([c for n in names[f] for c in self.configure(f, n, entry=entry)] for f in ("attack", "metric"))
            if not replays:
                metrics = [m for m in metrics if not getattr(type(m.obj), "replays", False)]
            rows = {(spec.label(), unlearner.name): [(unlearner, selection)] for spec in forget_sets}
            for seed in range(seeds):
                out += self._unlearning(data, seed, rows, attacks, metrics, forget_sets)
        return out

    def _interplay_unlearners(self, entry: DatasetEntry, names: list[str]) -> list[tuple[Configured, dict[str, Any]]]:
        """The interplay track's unlearners on one dataset, with the parameters tuned for the suite's forget
        set ``interplay.tuned_from`` (default: its first random forget set; none: plugin defaults)."""
        spec = self.suite.interplay
        if spec.datasets and entry.name not in spec.datasets:
            return []
        labels = {f.label(): f for f in self.suite.forget}
        if spec.tuned_from is not None and spec.tuned_from not in labels:
            from dememo.errors import SuiteError

            raise SuiteError(f"interplay.tuned_from = {spec.tuned_from!r} is not a forget set of the suite; "
                             f"forget sets: {', '.join(labels) or 'none'}")
        source = labels.get(spec.tuned_from) if spec.tuned_from else next(
            (f for f in self.suite.forget if f.kind == "random"), ForgetSpec("random", fraction=min(spec.share, 0.5)))
        refs = self.suite.references.get("unlearner", [])
        wanted = [n for n in names if not spec.unlearners or n in spec.unlearners or n in refs]
        return [c for n in wanted for c in self.unlearners_for(entry, source, n)
                if "random" in type(c[0].obj).forget_kinds]  # type: ignore[attr-defined]

    def _interplay(self, data, seed, poisoners, unlearners, attacks, metrics, filters: Filters = Filters(),
                   targets: list[str] | None = None) -> list[Cell]:
        """Poisoner × unlearner × target, unattacked: the owner's share poisoned, the model trained on the
        mixture, then an unlearner forgets the share (or a clean set). Poisoners named with
        ``--poisoner`` are included even when the suite's ``interplay.poisoners`` leaves them out."""
        spec = self.suite.interplay
        none = next((a for a in attacks if a.name == "none"), None)
        if none is None:
            return []
        chosen = [p for p in poisoners if not spec.poisoners or self._named(p, set(spec.poisoners) | set(filters.poisoner))]
        ms = self._metrics_for(metrics, "interplay", none, data)
        cells = []
        if not ms:
            return cells
        for target in spec.targets if targets is None else targets:
            for p in chosen:
                for u, selection in unlearners:
                    cells.append(Cell("interplay", data, seed, none, ms, poisoner=p, unlearner=u, selection=selection,
                                      owner=spec, target=target))
        return cells

    def own_tuning(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """Unlearner ``name``'s own tuning file under this suite (``tuning_record.load_local``) and its path;
        one that cannot be used is a note (``notes``), said once."""
        if name not in self._own_tuning:
            record, why = (None, None)
            if self.read_own_tuning:
                from dememo.planning.tuning_record import load_local

                record, why = load_local(self.suite, name)
            if why:
                self.notes.append(why)
            self._own_tuning[name] = (record, own_label(name) if record else None)
        return self._own_tuning[name]

    def tuning_records(self) -> dict[str, dict[str, Any]]:
        """The own tuning records this plan used, by unlearner (for workers, which re-plan with them)."""
        return {name: record for name, (record, _) in self._own_tuning.items() if record is not None}

    def unlearners_for(self, entry: DatasetEntry, spec: ForgetSpec, name: str) -> list[tuple[Configured, dict[str, Any]]]:
        """The configured variants of unlearner ``name`` for one forget set, with the suite's tuned values
        (``Suite.tuned``) applied, each with the record of how its parameters were chosen."""
        from dememo.planning.tuning_record import chosen

        entry_tuned = chosen(self.suite.tuned, entry.name, spec.label(), name)
        source = self.suite.tuning
        if entry_tuned is None:  # the unlearner's own tuning file (``dememo-bench tune``) where the suite's has none
            own, path = self.own_tuning(name)
            entry_tuned, source = chosen(own, entry.name, spec.label(), name), path
        extra = dict(entry_tuned["chosen"]) if entry_tuned else {}
        out = []
        for configured in self.configure("unlearner", name, extra, entry=entry):
            shown = set(configured.show)
            by_hand = sorted(k for k in self.sets.get(name, {}) if k in configured.obj.params())
            if by_hand:
                selection: dict[str, Any] = {"source": "set", "params": by_hand}
            elif entry_tuned and not shown & set(extra):
                selection = {"source": "tuned", "params": sorted(extra), "objective": entry_tuned["objective"],
                             "trials": len(entry_tuned["trials"]), "tuning": source}
            else:
                suite_set = sorted(set(self.suite.params.get("unlearner", {}).get(name, {}))
                                   | set(entry.plugin_params.get("unlearner", {}).get(name, {})) | shown)
                selection = {"source": "suite", "params": suite_set} if suite_set else {"source": "default"}
            out.append((configured, selection))
        return out

    @staticmethod
    def _applies(attack: Configured, stage: str, track: str) -> bool:
        cls = type(attack.obj)
        return stage in cls.stages and track in cls.tracks  # type: ignore[attr-defined]

    def _metrics_for(self, metrics: list[Configured], track: str, attack: Configured, data: DatasetConfig | None = None,
                     forget: ForgetSpec | None = None, train_attack: Configured | None = None) -> list[Configured]:
        """The metrics a cell computes: those of its track (and forget-set kind), after a model-stage attack
        only if they allow it, and within the suite's ``grid.metric_forget`` / ``grid.metric_datasets`` /
        ``grid.metric_train_attacks``."""
        grid = self.suite.grid

        def applies(m: Configured) -> bool:
            cls = type(m.obj)
            if track not in cls.tracks or not (cls.after_model_attack or attack.name == "none"):  # type: ignore[attr-defined]
                return False
            if train_attack is not None and m.name in grid.metric_train_attacks \
                    and train_attack.name not in grid.metric_train_attacks[m.name]:
                return False
            if forget is not None:
                if forget.kind not in cls.forget_kinds:  # type: ignore[attr-defined]
                    return False
                if m.name in grid.metric_forget and forget.label() not in grid.metric_forget[m.name]:
                    return False
            return not (data is not None and m.name in grid.metric_datasets and data.name not in grid.metric_datasets[m.name])

        return [m for m in metrics if applies(m)]

    @staticmethod
    def _named(configured: Configured, entries: set[str]) -> bool:
        """Whether ``configured`` is one of ``entries``: a plugin name (every variant), or a label whose
        parameters it has, e.g. ``em(mode=class)`` (whether or not its row label shows them)."""
        if configured.name in entries or configured.label in entries:
            return True
        params = configured.obj.params()
        for entry in entries:
            name, given = parse_label(entry)
            if name == configured.name and all(str(params.get(k)) == str(v) for k, v in given.items()):
                return True
        return False

    def _learner_side(self, data: DatasetConfig, poisoner: Configured, filters: Filters) -> bool:
        """Whether the suite's grid runs learner-side attacks against this poisoner on this dataset."""
        grid = self.suite.grid
        if grid.train_attack_datasets and data.name not in grid.train_attack_datasets:
            return False
        return not grid.train_attack_poisoners or self._named(poisoner, set(grid.train_attack_poisoners) | set(filters.poisoner))

    def _unlearnability(self, data, seed, poisoners, attacks, metrics, filters: Filters = Filters()) -> list[Cell]:
        train_attacks = [a for a in attacks if self._applies(a, "train", "unlearnability")]
        model_attacks = [a for a in attacks if self._applies(a, "model", "unlearnability")]
        cells = []
        for p in poisoners:
            learner_side = self._learner_side(data, p, filters)
            for ta in train_attacks:
                if ta.name != "none" and not learner_side:
                    continue
                for ma in model_attacks:
                    if ta.name != "none" and ma.name != "none" and not self.suite.grid.model_attacks_after_train_attacks:
                        continue
                    ms = self._metrics_for(metrics, "unlearnability", ma, data, train_attack=ta)
                    if ms:
                        cells.append(Cell("unlearnability", data, seed, ma, ms, poisoner=p, train_attack=ta))
        return cells

    def _unlearning(self, data, seed, unlearners, attacks, metrics, forget_sets: list[ForgetSpec] | None = None) -> list[Cell]:
        model_attacks = [a for a in attacks if self._applies(a, "model", "unlearning")]
        cells = []
        for spec in self.suite.forget if forget_sets is None else forget_sets:
            for (label, _), configured in unlearners.items():
                if label != spec.label():
                    continue
                for u, selection in configured:
                    if spec.kind not in type(u.obj).forget_kinds:  # type: ignore[attr-defined]
                        continue
                    for ma in model_attacks:
                        restricted = self.suite.grid.attack_forget.get(ma.name, self.suite.grid.model_attack_forget)
                        if ma.name != "none" and restricted and spec.label() not in restricted:
                            continue
                        if spec.kind not in type(ma.obj).forget_kinds:  # type: ignore[attr-defined]
                            continue
                        ms = self._metrics_for(metrics, "unlearning", ma, data, spec)
                        if ms:
                            cells.append(Cell("unlearning", data, seed, ma, ms, unlearner=u, forget=spec, selection=selection))
        return cells
