"""What a run is asked to do: the one set of options behind ``dememo.run(...)``, ``dememo.plan(...)`` and the
``dememo-bench`` command line (which builds it from its flags), checked once, here."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from dememo.errors import UserError
from dememo.params import parse_sets, parse_value
from dememo.planning.planner import Filters
from dememo.planning.suite import MAX_SEEDS

EXECUTORS = ("local", "ray")


def default_cache_dir() -> Path:
    """``$DEMEMO_CACHE_DIR``, else ``$XDG_CACHE_HOME/dememo``, else ``~/.cache/dememo``."""
    if os.environ.get("DEMEMO_CACHE_DIR"):
        return Path(os.environ["DEMEMO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dememo"


def names_of(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """A filter: one name or several (``"em"`` and ``["em"]`` alike)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable) or any(not isinstance(v, str) for v in value):
        raise UserError(f"a filter is a name or a list of names, e.g. unlearners=['scrub'], not {value!r}")
    return tuple(value)


def sets_of(value: Mapping[str, Any] | Iterable[str] | None) -> dict[str, dict[str, Any]]:
    """Parameter overrides as the planner reads them (``{"finetune": {"lr": 0.01}}``), from ``--set`` strings
    (``["finetune.lr=0.01"]``) or a mapping, flat (``{"finetune.lr": 0.01}``) or nested."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        out: dict[str, dict[str, Any]] = {}
        for key, given in value.items():
            if isinstance(given, Mapping):
                out.setdefault(str(key), {}).update({str(k): v for k, v in given.items()})
                continue
            plugin, dot, param = str(key).rpartition(".")
            if not dot or not plugin or not param:
                raise UserError(f"sets: {key!r} is not PLUGIN.PARAM (e.g. {{'finetune.lr': 0.01}})")
            out.setdefault(plugin, {})[param] = parse_value(given) if isinstance(given, str) else given
        return out
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable) or any(not isinstance(v, str) for v in value):
        raise UserError(f"sets is a mapping ({{'finetune.lr': 0.01}}) or a list of 'plugin.param=value', not {value!r}")
    return parse_sets(list(value))


def _path(value: Any) -> Path | None:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise UserError(f"a directory option takes a path, not {value!r}")
    return None if value is None else Path(value)


@attrs.frozen(kw_only=True)
class RunOptions:
    """Every option of a run. Filters take one name or several; ``sets`` takes ``--set`` strings or a
    mapping (``{"finetune.lr": 0.01}``). ``jobs``/``threads`` left as None follow ``$DEMEMO_JOBS`` /
    ``$DEMEMO_THREADS`` and the device, as on the command line."""

    #: a shipped suite's name or a suite file; None: ``smoke`` with ``smoke``, else ``quick``
    suite: str = None  # type: ignore[assignment]
    poisoners: tuple[str, ...] = attrs.field(default=(), converter=names_of)
    unlearners: tuple[str, ...] = attrs.field(default=(), converter=names_of)
    attacks: tuple[str, ...] = attrs.field(default=(), converter=names_of)
    metrics: tuple[str, ...] = attrs.field(default=(), converter=names_of)
    datasets: tuple[str, ...] = attrs.field(default=(), converter=names_of)
    forget: tuple[str, ...] = attrs.field(default=(), converter=names_of)
    tracks: tuple[str, ...] = attrs.field(default=(), converter=names_of)
    seeds: int | None = None
    sets: dict[str, dict[str, Any]] = attrs.field(factory=dict, converter=sets_of)
    device: str = "auto"
    out: Path | None = attrs.field(default=None, converter=_path)
    cache_dir: Path | None = attrs.field(default=None, converter=_path)
    data_dir: Path | None = attrs.field(default=None, converter=_path)
    download: bool = False
    jobs: int | None = None
    threads: int | None = None
    executor: str = "local"
    address: str | None = None
    isolate: bool = False
    cell_timeout: float | None = None
    cell_memory: float | None = None  # GiB
    deterministic: bool = False
    yes: bool = False
    #: progress bars: None draws them on an interactive stderr (``DEMEMO_PROGRESS`` overrides)
    progress: bool | None = None
    #: a model unlearned outside dememo, evaluated as a row of its own (``dememo-bench eval``): ``path`` of
    #: its state dict, ``name`` of its row, the ``seed`` it was exported at (the run keeps that seed only)
    external: dict[str, Any] | None = None
    #: a plugin author's quick check (``--smoke``): the ``smoke`` suite unless ``suite`` names another, one
    #: seed unless ``seeds`` is given, and the suite's reference rows for each family no filter names
    #: (``for_smoke``)
    smoke: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.smoke, bool):
            raise UserError(f"smoke must be True or False, got {self.smoke!r}")
        if self.suite is None:
            object.__setattr__(self, "suite", "smoke" if self.smoke else "quick")
        if not isinstance(self.suite, (str, os.PathLike)):
            raise UserError(f"suite must be a shipped suite's name or a path to a .toml file, not {type(self.suite).__name__}")
        object.__setattr__(self, "suite", str(self.suite))
        if self.seeds is not None and (isinstance(self.seeds, bool) or not isinstance(self.seeds, int)
                                       or not 1 <= self.seeds <= MAX_SEEDS):
            raise UserError(f"--seeds must be a whole number between 1 and {MAX_SEEDS}, got {self.seeds!r}")
        for name in ("jobs", "threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise UserError(f"--{name} must be a whole number of at least 1, got {value!r}")
            if value is not None and value < 1:
                raise UserError(f"--{name} must be at least 1, got {value}")
        for name, flag in (("cell_timeout", "--cell-timeout"), ("cell_memory", "--cell-memory")):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise UserError(f"{flag} must be a positive number, got {value!r}")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise UserError(f"progress must be True, False or None (draw bars on a terminal), got {self.progress!r}")
        if self.executor not in EXECUTORS:
            raise UserError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.isolate and self.executor != "local":
            raise UserError("--isolate works with the local executor; Ray already runs every task in a worker process")
        if self.jobs is not None and self.executor != "local":
            raise UserError("--jobs works with the local executor; Ray schedules its own tasks (leave --jobs out)")

    @property
    def isolated(self) -> bool:
        """Whether cells run in worker processes even with one job: asked for, or implied by a cell limit."""
        return self.isolate or self.cell_timeout is not None or self.cell_memory is not None

    @property
    def filters(self) -> Filters:
        return Filters(poisoner=self.poisoners, unlearner=self.unlearners, attack=self.attacks, metric=self.metrics,
                       dataset=self.datasets, forget=self.forget, track=self.tracks)

    @property
    def narrowed(self) -> bool:
        """Whether any filter is given (a run without ``--all`` needs one)."""
        return any(attrs.astuple(self.filters))


def for_smoke(options: RunOptions, references: Mapping[str, Any]) -> RunOptions:
    """The plain options a ``smoke`` run stands for, given its suite's ``references``: one seed unless given,
    and for each of the poisoner, unlearner and attack families that no filter names, the suite's reference
    plugins of that family (``none``; ``original`` and ``retrain``; the unattacked model). With both row
    families named, every track of the suite runs: a new poisoner also gets its interplay rows
    (``poisoner → original``/``retrain``), a new unlearner its interplay row on the clean share
    (``none → unlearner``), a new attack or metric every track's reference rows. The new plugin's rows beside
    the references, and nothing else."""
    fill: dict[str, Any] = {"smoke": False, "seeds": options.seeds or 1}
    for field, family in (("attacks", "attack"), ("poisoners", "poisoner"), ("unlearners", "unlearner")):
        if not getattr(options, field):
            fill[field] = tuple(references.get(family, ())) or (("none",) if family == "attack" else ())
    return attrs.evolve(options, **fill)


def run_options(suite: str | None, options: dict[str, Any]) -> RunOptions:
    """``RunOptions`` from the keyword arguments of ``dememo.run``/``plan``/``evaluate``: a misspelt one is a
    one-line UserError with the closest option (``unlearner`` → ``unlearners``), not a TypeError."""
    from dememo.errors import did_you_mean

    known = [f.name for f in attrs.fields(RunOptions)]
    for name in options:
        if name not in known:
            raise UserError(f"unknown option {name!r}{did_you_mean(name, known)}; options: {', '.join(known)}")
    return RunOptions(suite=suite, **options)
