"""Suites: everything that fixes a benchmark run (datasets, architectures, recipes, budgets, forget sets,
seeds, plugin variants and attack grids). Suites are TOML files; the ones shipped with dememo live in
``dememo/suites/``. ``--suite NAME`` picks a shipped one, ``--suite path/to/file.toml`` any other.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import attrs

from dememo.errors import ParameterError, SuiteError, did_you_mean
from dememo.hashing import digest
from dememo.params import structure
from dememo.training import Recipe


@attrs.frozen
class DatasetEntry:
    """One dataset in a suite, with the architecture and recipe used on it."""

    name: str
    architecture: str
    recipe: Recipe = Recipe()
    #: the dataset plugin that loads it, when not the one called ``name`` (two ``local`` datasets in one suite)
    plugin: str | None = None

    @property
    def source(self) -> str:
        """The name of the dataset plugin that loads it."""
        return self.plugin or self.name
    budgets: dict[str, float] = attrs.field(factory=dict)  # overrides the dataset's declared defaults
    params: dict[str, Any] = attrs.field(factory=dict)  # dataset plugin parameters
    architecture_params: dict[str, Any] = attrs.field(factory=dict)
    #: family -> plugin -> parameters for this dataset only (over the suite-wide ``params``)
    plugin_params: dict[str, dict[str, dict[str, Any]]] = attrs.field(factory=dict)


@attrs.frozen
class ForgetSpec:
    """A forget set (see ``dememo.forget``): ``random`` (a seeded ``fraction`` of the training set),
    ``class`` (whole ``classes``) or ``memorization`` (a ``fraction`` of the training set ranked by the
    memorization scores of ``scorer``, a metric plugin that is a ``dememo.Scorer``: the ``stratum`` low,
    mid, high or mix, selected as the RUM paper's code does with ``selection = "rum"``, or drawn from the
    thirds of the ranking with ``selection = "tertile"``, dememo's first rule)."""

    kind: Literal["random", "class", "memorization"]
    fraction: float = 0.1
    classes: tuple[int, ...] = (0,)
    stratum: Literal["low", "mid", "high", "mix"] = "high"
    scorer: str = "confidence"
    selection: Literal["rum", "tertile"] = "rum"

    def __attrs_post_init__(self) -> None:
        if self.kind in ("random", "memorization") and not 0 < self.fraction < 1:
            raise ValueError(f"forget fraction must be in (0, 1), got {self.fraction}")
        if self.kind == "memorization" and self.selection == "tertile" and self.fraction > 1 / 3:
            raise ValueError(f"a tertile memorization forget set draws from a third of the data: fraction must be ≤ 1/3, got {self.fraction}")
        if self.kind == "class" and not self.classes:
            raise ValueError("a class forget set needs at least one class")

    def label(self) -> str:
        if self.kind == "random":
            return f"random-{self.fraction * 100:g}%"
        if self.kind == "memorization":
            return f"mem-{self.stratum}-{self.fraction * 100:g}%" + ("-tertile" if self.selection == "tertile" else "")
        return "class-" + "+".join(str(c) for c in self.classes)

    def to_json(self) -> dict[str, Any]:
        if self.kind == "random":
            return {"kind": "random", "fraction": self.fraction}
        if self.kind == "memorization":
            # the selection rule enters the forget set's fingerprint and so every cache key downstream of it
            return {"kind": "memorization", "fraction": self.fraction, "stratum": self.stratum, "scorer": self.scorer,
                    "selection": self.selection}
        return {"kind": "class", "classes": list(self.classes)}


Family = Literal["poisoner", "unlearner", "attack", "metric"]


@attrs.frozen
class Curve:
    """A summary of a metric column along an attack-strength sweep (the attack's ``param``, run as
    suite variants): the normalised area under the column-vs-``param`` curve, per seed, shown as its own
    leaderboard table. With ``from_zero`` the unattacked model (attack ``none``) is the point param = 0."""

    attack: str
    param: str
    column: str = "test_acc"
    from_zero: bool = True


@attrs.frozen
class Grid:
    """Which attack combinations a suite runs. Every learner-side (train-stage) attack costs a training
    run per poisoner, dataset and seed, so a suite may restrict where they run; plugins not installed are
    ignored, and poisoners named with ``--poisoner`` are always included."""

    #: poisoners that learner-side attacks run against: a plugin name (every variant) or a row label such
    #: as ``em(mode=sample)``; empty: all
    train_attack_poisoners: tuple[str, ...] = ()
    #: datasets on which learner-side attacks run; empty: all
    train_attack_datasets: tuple[str, ...] = ()
    #: also run model-stage attacks on models from learner-side attacks (else only after standard training)
    model_attacks_after_train_attacks: bool = True
    #: forget sets (labels such as ``random-10%``) on which model-stage attacks run on the unlearning
    #: track; the others get the unattacked cells only; empty: all
    model_attack_forget: tuple[str, ...] = ()
    #: model-stage attack -> the forget sets on which it runs, overriding ``model_attack_forget`` for it
    #: (e.g. a class-level attack on the class forget set only)
    attack_forget: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: metric -> the forget sets (labels) on which it runs; metrics not named run on every forget set.
    #: For costly many-model metrics (U-LiRA, forget quality), which replay the unlearner on shadow models
    metric_forget: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: metric -> the datasets on which it runs; metrics not named run on every dataset
    metric_datasets: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: metric -> the learner-side attacks (names; ``none`` = standard training) after which it runs on the
    #: unlearnability track; metrics not named run after every one
    metric_train_attacks: dict[str, tuple[str, ...]] = attrs.field(factory=dict)


@attrs.frozen
class Interplay:
    """The interplay track (SoK, arXiv 2605.11592): a data owner's ``share`` of the training set (fixed
    seeded positions, ``dememo.engine.runner.poison_subset``) is released poisoned, the model is trained on the
    mixture, and an unlearner is then asked to forget. ``targets``: ``"share"`` forgets the owner's share
    (does unlearning undo what the poison hid?); ``"clean"`` forgets a clean random ``clean_forget``
    fraction of the training set drawn from outside the share (does the poison change how well the
    unlearner forgets?). Unlearners run with the parameters tuned for the suite's forget set ``tuned_from``
    (default: its first random forget set)."""

    share: float = 0.5
    targets: tuple[Literal["share", "clean"], ...] = ("share", "clean")
    clean_forget: float = 0.1
    #: poisoners (names or row labels such as ``em(mode=class)``); empty: all
    poisoners: tuple[str, ...] = ()
    #: unlearners (names); empty: all
    unlearners: tuple[str, ...] = ()
    #: datasets; empty: all
    datasets: tuple[str, ...] = ()
    tuned_from: str | None = None

    def __attrs_post_init__(self) -> None:
        if not 0 < self.share < 1:
            raise ValueError(f"interplay share must be in (0, 1) (a retain set must remain), got {self.share}")
        if not 0 < self.clean_forget < 1 - self.share:
            raise ValueError(f"interplay clean_forget must be in (0, 1 − share) = (0, {1 - self.share:g}), got {self.clean_forget}")
        if not self.targets:
            raise ValueError("interplay targets must name at least one of 'share', 'clean'")

    def share_label(self) -> str:
        return f"owner-{self.share * 100:g}%"

    def forget_label(self, target: str) -> str:
        """The forget-set label of an interplay cell (its leaderboard table)."""
        if target == "share":
            return f"{self.share_label()} (poisoned, forgotten)"
        return f"clean-{self.clean_forget * 100:g}% ({self.share_label()} poisoned)"

    def to_json(self, target: str) -> dict[str, Any]:
        return {"kind": "interplay", "target": target, "share": self.share,
                **({"fraction": self.clean_forget} if target == "clean" else {})}


def check_tuned(tuned: Any) -> None:
    """The shape the planner and the leaderboard read from a tuning record (``dememo-bench tune``'s
    ``tuning.json``, carried in a suite's ``tuned``): a ValueError naming the first problem."""
    if tuned is None:
        return
    if not isinstance(tuned.get("entries"), list):
        raise ValueError("tuned: 'entries' must be a list (a record written by 'dememo-bench tune')")
    if not isinstance(tuned.get("seeds", []), list):
        raise ValueError("tuned: 'seeds' must be a list of tuning seeds")
    for i, entry in enumerate(tuned["entries"]):
        if not isinstance(entry, dict):
            raise ValueError(f"tuned: entry {i} is not an object")
        if not all(isinstance(entry.get(k), str) for k in ("dataset", "forget", "unlearner")):
            raise ValueError(f"tuned: entry {i} needs 'dataset', 'forget' and 'unlearner' names")
        if not isinstance(entry.get("chosen"), (dict, type(None))):
            raise ValueError(f"tuned: entry {i}: 'chosen' must be an object of parameter values or null")
        if not isinstance(entry.get("trials"), list):
            raise ValueError(f"tuned: entry {i}: 'trials' must be a list (the search log)")
        objective = entry.get("objective")
        if isinstance(objective, bool) or not isinstance(objective, (int, float, type(None))):
            raise ValueError(f"tuned: entry {i}: 'objective' must be a number or null")


@attrs.frozen
class Suite:
    name: str
    datasets: list[DatasetEntry]
    description: str = ""
    seeds: int = 3
    tracks: tuple[Literal["unlearnability", "unlearning", "interplay"], ...] = ("unlearnability", "unlearning")
    forget: list[ForgetSpec] = attrs.field(factory=lambda: [ForgetSpec("random")])
    #: family -> plugin -> suite defaults for its parameters
    params: dict[Family, dict[str, dict[str, Any]]] = attrs.field(factory=dict)
    #: family -> plugin -> list of parameter sets, each run as its own row (or attack column)
    variants: dict[Family, dict[str, list[dict[str, Any]]]] = attrs.field(factory=dict)
    #: family -> plugins always included as references, even when filters narrow the run
    references: dict[Family, list[str]] = attrs.field(factory=dict)
    #: track -> the metric columns shown under every model-stage attack in the leaderboard
    headline: dict[str, list[str]] = attrs.field(factory=dict)
    #: track -> leaderboard column order (columns not listed follow, alphabetically by metric)
    columns: dict[str, list[str]] = attrs.field(factory=dict)
    grid: Grid = Grid()
    interplay: Interplay = Interplay()
    #: attack-strength sweeps summarised by the area under their curve
    curves: list[Curve] = attrs.field(factory=list)
    #: a ``dememo-bench tune`` output (path relative to the suite file) whose chosen unlearner parameters
    #: this suite applies; ``tuned`` holds its content once loaded (the search log travels in the results)
    tuning: str | None = None
    tuned: dict[str, Any] | None = attrs.field(default=None, validator=lambda _, __, value: check_tuned(value))

    def fingerprint(self) -> str:
        return digest(self.to_json())

    def to_json(self) -> dict[str, Any]:
        from dememo.params import converter

        return converter.unstructure(self)

    def dataset(self, name: str) -> DatasetEntry:
        for entry in self.datasets:
            if entry.name == name:
                return entry
        raise SuiteError(f"suite {self.name!r} has no dataset {name!r}")


def _register_dataset_entry() -> None:
    """A dataset entry without ``plugin`` unstructures as before the field existed (suite fingerprints, which
    boards pin, do not change)."""
    from cattrs.gen import make_dict_unstructure_fn, override

    from dememo.params import converter

    converter.register_unstructure_hook(
        DatasetEntry, make_dict_unstructure_fn(DatasetEntry, converter, plugin=override(omit_if_default=True)))


_register_dataset_entry()

#: the most seeds a suite may ask for (each is a full set of trainings; a larger number is a typo, and
#: planning it would not end)
MAX_SEEDS = 10_000
#: suite files larger than this are refused before parsing (the shipped ones are a few kilobytes)
MAX_SUITE_BYTES = 8 * 2**20


def shipped() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files("dememo.suites").iterdir() if p.name.endswith(".toml"))


def load_suite(name_or_path: str, apply_tuning: bool = True) -> Suite:
    """A shipped suite by name, or a suite file by path; malformed files give a path-addressed error.
    ``apply_tuning=False`` leaves a referenced tuning file unread (``dememo-bench tune`` makes it)."""
    path = Path(name_or_path)
    from_file = path.suffix == ".toml" or path.exists()
    if from_file:
        try:
            with path.open("rb") as f:
                raw_bytes = f.read(MAX_SUITE_BYTES + 1)
        except IsADirectoryError:
            raise SuiteError(f"suite {path} is a directory; give a suite .toml file or a shipped suite's name") from None
        except OSError as exc:
            raise SuiteError(f"cannot read suite file {path}: {exc.strerror or exc}") from None
        if len(raw_bytes) > MAX_SUITE_BYTES:
            raise SuiteError(f"suite file {path} is over {MAX_SUITE_BYTES // 2**20} MiB; a suite is a short TOML file")
        try:  # TOML is UTF-8 (a leading byte-order mark is tolerated)
            text = raw_bytes.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SuiteError(f"suite file {path} is not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
        origin = str(path)
    else:
        names = shipped()
        if name_or_path not in names:
            raise SuiteError(f"unknown suite {name_or_path!r}{did_you_mean(name_or_path, names)}; shipped suites: {', '.join(names)} (or give a .toml path)")
        text = resources.files("dememo.suites").joinpath(f"{name_or_path}.toml").read_text()
        origin = name_or_path
    try:
        raw = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer of more than 4,300 digits
        raise SuiteError(f"suite {origin} is not valid TOML: {' '.join(str(exc).split())}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise SuiteError(f"suite {origin} is not a suite: its values are nested too deeply") from None
    try:
        suite = structure(raw, Suite, "$")
    except ParameterError as exc:
        raise SuiteError(f"suite {origin}: {exc}") from None
    if not suite.datasets:
        raise SuiteError(f"suite {origin} lists no datasets")
    if suite.seeds < 1:
        raise SuiteError(f"suite {origin}: seeds must be ≥ 1")
    if suite.seeds > MAX_SEEDS:
        raise SuiteError(f"suite {origin}: seeds must be ≤ {MAX_SEEDS} (each seed is a full set of trainings)")
    if apply_tuning and suite.tuning and suite.tuned is None:
        from dememo.planning.tuning_record import load

        where = path.parent / suite.tuning if from_file else resources.files("dememo.suites").joinpath(suite.tuning)
        if Path(str(where)).exists() and not where.is_file():  # a directory, or a device read forever
            raise SuiteError(f"suite {origin}: tuning = {suite.tuning!r} is not a file")
        try:
            suite = attrs.evolve(suite, tuned=load(where))  # type: ignore[arg-type]
        except ValueError as exc:
            raise SuiteError(f"suite {origin}: tuning file {suite.tuning!r}: {exc}") from None
    return suite
