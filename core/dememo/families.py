"""The six plugin families (binding API). A plugin is an attrs class deriving from one of these.

Class attributes describe the method (``name``, ``version``, what it applies to); attrs fields are its
hyper-parameters with defaults. ``version`` goes into every cache key: bump it whenever a change to the
code changes the method's output, so stale cached results are not reused.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs
import torch
from torch import nn

from dememo.budget import Norm

if TYPE_CHECKING:
    from dememo.context import Context
    from dememo.data import Data, Splits, Task
    from dememo.evaluation import Evaluation
    from dememo.training import History

Track = Literal["unlearnability", "unlearning", "interplay"]
#: the default ``tracks`` of an attack or metric. The interplay track (poisoned share, then unlearned) is
#: opt-in: a metric that declares it reads ``ev.task`` as on the unlearning track, and ``ev.owner_share``
TRACKS: tuple[Track, ...] = ("unlearnability", "unlearning")
#: forget-set kinds (``dememo.forget``); ``forget_kinds`` on an unlearner, attack or metric says where it applies
FORGET_KINDS: tuple[str, ...] = ("random", "class", "memorization")


@attrs.define
class Plugin:
    """Common behaviour of every family: identity, parameters and documentation."""

    family: ClassVar[str] = "plugin"
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"

    def params(self) -> dict[str, Any]:
        """The hyper-parameters as a plain dict (the value that is hashed into cache keys)."""
        return attrs.asdict(self, recurse=True)

    def label(self, show: tuple[str, ...] = ()) -> str:
        """``name`` plus the parameters that differ from their defaults or are named in ``show``,
        e.g. ``em(mode=class)``."""
        changed = []
        for f in attrs.fields(type(self)):
            value = getattr(self, f.name)
            default = f.default.factory() if isinstance(f.default, attrs.Factory) else f.default  # type: ignore[attr-defined]
            if value != default or f.name in show:
                changed.append(f"{f.name}={value}")
        return f"{self.name}({', '.join(changed)})" if changed else self.name

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        doc = inspect.getdoc(cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


def _ratio_in_unit_interval(instance: Any, attribute: Any, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"ratio is the poisoned fraction of the training set and must be in (0, 1], got {value}")


@attrs.define
class Poisoner(Plugin):
    """Availability poisoning: perturb training images before release so models learn little from them.

    ``norm`` states the threat model; the harness gives the suite's radius for it as ``ctx.budget`` and
    checks the output (finite, in [0, 1], within budget). ``norm = "none"`` declares a non-ℓp transform.

    ``ratio`` (every poisoner has it; ``--set em.ratio=0.2``) is partial poisoning, handled by the
    harness: the poisoner always perturbs the whole training set, the harness stores the perturbation δ
    and applies it only to a fixed, seeded subset of ``round(ratio·n)`` samples (the same subset for
    every poisoner, nested across ratios; see ``dememo.engine.runner.poison_subset``). So a ratio sweep reuses
    one poison, and the subset is recorded in each result.
    """

    family: ClassVar[str] = "poisoner"
    norm: ClassVar[Norm] = "linf"
    ratio: float = attrs.field(default=1.0, kw_only=True, validator=_ratio_in_unit_interval)

    def poison(self, data: Data, ctx: Context) -> torch.Tensor:
        """Return poisoned images for ``data.x`` (same shape, values in [0, 1], within ``ctx.budget``)."""
        raise NotImplementedError


@attrs.define
class Unlearner(Plugin):
    """Machine unlearning: remove the forget set's influence from a trained model.

    ``reads_forget = False`` declares a method that must not see the forget set (e.g. fine-tuning on the
    retain set); the harness then passes a task whose forget set is empty. ``forget_kinds`` lists the
    forget-set kinds the method applies to (``random``, ``class``, ``memorization``; a class-level method
    such as Spotter declares ``("class",)``).

    ``search_space`` declares, next to the defaults, the values ``dememo-bench tune`` tries for each
    hyper-parameter (a grid: every combination, or a seeded sample of ``--trials`` of them), e.g.
    ``{"lr": (0.003, 0.01, 0.03), "epochs": (2, 5)}``. Parameters not named keep their defaults.

    A method may attach a plain-JSON dict to the model it returns as ``model.dememo_record`` (e.g. the
    (ε, δ) of a certified removal); the harness stores it with the stage and writes it into every cell on
    that model as ``unlearn_record``.

    A method that builds other plugins through ``ctx.plugin`` or reads ``ctx.scores`` lists them in
    ``called()``; their configured parameters then enter its cache key.
    """

    family: ClassVar[str] = "unlearner"
    reads_forget: ClassVar[bool] = True
    forget_kinds: ClassVar[tuple[str, ...]] = FORGET_KINDS
    search_space: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def unlearn(self, model: nn.Module, task: Task, ctx: Context) -> nn.Module:
        """Return the unlearned model (it may be ``model`` itself, modified; the harness passes a copy)."""
        raise NotImplementedError

    def called(self) -> list[tuple[str, str]]:
        """``(family, label)`` of every plugin this method builds through ``ctx.plugin`` (e.g.
        ``("unlearner", "neggrad-plus(alpha=0.97)")``) or reads through ``ctx.scores`` (``("scorer",
        "confidence")``). Their configured parameters enter the unlearning stage's cache key, so changing
        one of them recomputes this method, and changing any other plugin does not. Default: none."""
        return []


def _tuple(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


class _Declaration:
    """A plugin's declaration as plain JSON and back (tuples as lists; unknown keys ignored, missing ones
    default), so it can travel in results.json."""

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self, recurse=False).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Any:
        names = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@attrs.frozen
class Plot(_Declaration):
    """A figure of ``dememo-bench report`` that a column appears in (``Column(plots=(...))``). The report
    draws one per (track, dataset, forget set) group whose cells hold the column, in ``order`` (then in
    declaration order); its file name is ``figure`` plus the group, its title the group's plus ``title``.

    ``kind``:

    - ``curves`` (a ``series`` column): one line per method (mean over seeds, ± one standard deviation),
      ``x`` / ``y`` the axis labels, y in percent when ``percent``. Columns declaring the same ``figure`` are
      drawn side by side in one figure, one panel each titled ``panel`` (the figure's texts are the first
      one's). On the interplay track a one-column figure has one panel per poisoner. ``line`` adds a
      dash-dotted horizontal line labelled ``line_label``: a value, or the name of a number column whose mean
      over the group's unattacked cells it is (e.g. a target accuracy), and ``line_caption`` to the caption.
    - ``heatmap`` (a number column of the interplay track): the poisoner × unlearner matrix of the column's
      mean, one per column, named ``figure-<column>``; ``caption`` says what a cell measures. A ``signed``
      column gets a diverging colour map centred on 0.
    - ``scatter``: one point per method, the column on ``axis`` (``x`` or ``y``). The x column is the first
      by ``order`` that the group has; a ``match`` column with a ``reference`` is drawn as the distance to
      the reference row's value of the same seed. The y plot gives ``title``, ``caption`` (what y is) and
      ``reading`` (where best lies); the x plot ``caption`` (what x is) and ``reading`` (the reference rows).

    ``caption`` says what the figure shows and ``reading`` how to read it (which way is better); the report
    adds the number of seeds. ``tracks`` restricts it to those tracks (default: wherever the column is
    reported), so a metric can word one figure differently per track.
    """

    figure: str
    kind: Literal["curves", "heatmap", "scatter"] = "curves"
    title: str = ""
    caption: str = ""
    reading: str = ""
    x: str = ""
    y: str = ""
    panel: str = ""
    percent: bool = True
    line: float | str | None = None
    line_label: str = ""
    line_caption: str = ""
    axis: Literal["x", "y"] = "y"
    tracks: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    order: int = 0


@attrs.frozen
class Tuning(_Declaration):
    """A column's role in ``dememo-bench tune`` (``Column(tuning=...)``): every tuning trial computes the
    metrics that declare one and records, per tuning seed, the column's value under ``record`` (in
    ``order``; e.g. ``test_acc`` as ``val_acc``, since a trial reads the validation split in place of the
    test split). Exactly one installed column is the ``objective``: the candidate with the best mean over
    tuning seeds wins (largest for a ``higher`` column, smallest otherwise)."""

    record: str
    objective: bool = False
    order: int = 0


@attrs.frozen
class Sweep(_Declaration):
    """An attack-strength sweep (``Attack.sweeps``): a metric column along the attack parameter ``param``
    over the attack's suite variants, the unattacked model being ``param`` = 0 when ``from_zero``. ``axis`` is
    the x axis label (default: the parameter's name) and ``note`` a sentence the caption adds on how to read
    it. With a ``column`` the report draws it whenever the results hold the variants (on ``tracks``, default
    every track), as the generic ``sweep-<attack>-<param>-<column>`` figure, or, with a ``figure``, as a figure
    of that name with its own ``title`` (after the group's) and ``caption``, drawn in ``order`` among the
    group's figures; without a column only where a suite's ``curves`` ask for it."""

    param: str
    axis: str = ""
    column: str = ""
    tracks: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    from_zero: bool = True
    note: str = ""
    figure: str = ""
    title: str = ""
    caption: str = ""
    order: int = 0


@attrs.frozen(eq=False)
class AttackData:
    """What a model-stage attack may use: the dataset's splits and, on the unlearning track, the task."""

    splits: Splits
    task: Task | None = None


@attrs.frozen(eq=False)
class LearnerData:
    """What a train-stage attack (the learner) may use.

    ``train`` is the released training set (poisoned on the unlearnability track). ``holdout`` is a small
    clean labelled set the learner owns (the dataset's validation split), e.g. for deep feature
    reweighting or for choosing an epoch. ``monitor`` (the test split) is for the per-epoch accuracy
    recorded in the returned history only: pass it as ``ctx.fit(..., eval_data=data.monitor)`` and
    never base a decision on it.
    """

    train: Data
    holdout: Data
    monitor: Data | None = None


@attrs.define
class Attack(Plugin):
    """An adversary that shows dememorization is shallow.

    ``stages`` holds ``"train"`` (replace standard training on possibly poisoned data: ``train``) and/or
    ``"model"`` (take a trained or unlearned model: ``attack``). ``tracks`` lists where it applies, and
    ``forget_kinds`` on which forget-set kinds of the unlearning track (``("class",)`` for an attack on a
    forgotten class, such as prototype relearning).

    ``sweeps`` declares the attack's strength parameters as :class:`Sweep` s: how ``dememo-bench report``
    draws a metric column along the attack's suite variants (a suite's ``curves`` name the attack and the
    parameter; a sweep with a ``column`` is drawn whenever the results hold the variants). They are written
    into ``results.json`` with the plugin list (``plugins[i].sweeps``); they do not enter cache keys.
    """

    family: ClassVar[str] = "attack"
    stages: ClassVar[tuple[str, ...]] = ("model",)
    tracks: ClassVar[tuple[Track, ...]] = TRACKS
    forget_kinds: ClassVar[tuple[str, ...]] = FORGET_KINDS
    sweeps: ClassVar[tuple[Sweep, ...]] = ()

    def train(self, data: LearnerData, ctx: Context) -> nn.Module | tuple[nn.Module, History]:
        """Train-stage attacks: return a model learned from ``data.train`` (possibly poisoned), or the
        model and the ``History`` of its main fit (so that peak accuracy can be reported)."""
        raise NotImplementedError

    def attack(self, model: nn.Module, data: AttackData, ctx: Context) -> nn.Module | list[nn.Module]:
        """Model-stage attacks: return the attacked model, or several (random draws; metrics average)."""
        raise NotImplementedError


Direction = Literal["higher", "lower", "match", "info"]


@attrs.frozen
class Column:
    """One number a metric reports. ``direction`` says which way is better *for the dememorizer*;
    ``match`` means closest to the reference row (``reference``, e.g. ``retrain``) is best; ``info``
    columns are context (no better or worse).
    ``unit`` is ``fraction`` (rendered as a percentage), ``number``, ``seconds``, ``epochs``, ``count``
    (an integer, e.g. a number of images) or ``series``: a curve (``dememo.Series``, e.g. a metric along
    a perturbation-radius grid) kept in the cell's ``series`` in ``results.json``, not in the tables.
    ``wall_clock`` marks a value measured from elapsed time (run time, RTE): it differs between runs of the
    same cell, so comparisons of results for equality leave it out. ``cap``: a value above it means "more
    than cap" (a censored measurement, e.g. relearning epochs that never reached the target: report
    ``cap + 1``); tables render it as ``> cap``. ``detail`` columns are kept in ``results.json`` and the CSV
    but left out of the terminal and Markdown tables (diagnostics such as counts of undefined samples).
    ``signed`` marks a difference of two values of its unit (e.g. a gain in accuracy): it may be negative
    (a fraction column then lies in [−1, 1], which is what a submission's range check accepts).

    What the core does with a column beyond the tables is declared here too, never known by name:
    ``long_label`` is its name on figure axes and in captions where ``label`` is an abbreviation (``TA`` →
    ``clean test accuracy``); ``plots`` the report's figures it appears in (:class:`Plot`); ``tuning`` its
    role in ``dememo-bench tune`` (:class:`Tuning`). All three are written into ``results.json``'s
    ``columns`` (so the report of a results file needs no plugin installed) and enter no cache key."""

    label: str
    direction: Direction
    description: str
    unit: Literal["fraction", "number", "seconds", "epochs", "count", "series"] = "fraction"
    reference: str | None = None
    wall_clock: bool = False
    cap: float | None = None
    detail: bool = False
    signed: bool = False
    long_label: str | None = None
    plots: tuple[Plot, ...] = attrs.field(default=(), converter=tuple)
    tuning: Tuning | None = None

    def to_json(self, metric: str) -> dict[str, Any]:
        """The declaration as ``results.json`` records it under ``columns.<track>.<column>``."""
        return {"metric": metric, "label": self.label, "direction": self.direction, "unit": self.unit,
                "description": self.description, "reference": self.reference, "wall_clock": self.wall_clock,
                "cap": self.cap, "detail": self.detail, "signed": self.signed, "long_label": self.long_label,
                "plots": [p.to_json() for p in self.plots],
                "tuning": self.tuning.to_json() if self.tuning else None}


@attrs.frozen
class Series:
    """A metric's curve: ``y`` measured at each ``x`` (e.g. residual knowledge at each radius τ), the value
    of a ``Column(unit="series")``. NaN entries are allowed (undefined points) and stored as null."""

    x: tuple[float, ...] = attrs.field(converter=lambda v: tuple(float(e) for e in v))
    y: tuple[float, ...] = attrs.field(converter=lambda v: tuple(float(e) for e in v))
    x_name: str = "x"

    def __attrs_post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"Series needs as many y values as x values (got {len(self.y)} and {len(self.x)})")

    def to_json(self) -> dict[str, Any]:
        return {"x_name": self.x_name, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Series:
        nan = float("nan")
        return cls([nan if v is None else v for v in data["x"]], [nan if v is None else v for v in data["y"]],
                   data.get("x_name", "x"))


@attrs.define
class Metric(Plugin):
    """A measurement on the model under evaluation.

    ``columns`` declares every key ``compute`` returns; ``tracks`` where it applies; ``needs`` the
    reference models it reads through ``ev.reference(name)`` (``original``, ``retrained``, ``clean``; or a
    dict from track to those names, see ``needs_on``);
    ``uses`` the other metrics it reads through ``ev.metric(name, on=...)`` (their parameters enter the
    cache key).
    ``forget_kinds`` restricts it on the unlearning track to those forget-set kinds (``("class",)`` for
    class-level measurements such as OU@ε). ``after_model_attack = False`` restricts it to cells without a model-stage attack (e.g. numbers read
    from the training history). ``reads_model = False`` declares a property of the cell's *training data*
    (e.g. a learnability score that trains its own surrogates): it is computed once per training set and
    seed and shared by every cell on that data, whatever model the cell evaluates. ``replays = True``
    declares that it calls ``ev.unlearn_many`` (the cell's unlearner on shadow models): the unlearner then
    enters its cache key.
    """

    family: ClassVar[str] = "metric"
    columns: ClassVar[dict[str, Column]] = {}
    tracks: ClassVar[tuple[Track, ...]] = TRACKS
    forget_kinds: ClassVar[tuple[str, ...]] = FORGET_KINDS
    needs: ClassVar[tuple[str, ...] | dict[str, tuple[str, ...]]] = ()
    uses: ClassVar[tuple[str, ...]] = ()
    after_model_attack: ClassVar[bool] = True
    reads_model: ClassVar[bool] = True
    replays: ClassVar[bool] = False

    def compute(self, ev: Evaluation, ctx: Context) -> dict[str, float]:
        raise NotImplementedError

    @classmethod
    def needs_on(cls, track: str) -> tuple[str, ...]:
        """The references it reads on ``track``: ``needs``, or ``needs[track]`` when ``needs`` is a dict
        (a metric whose reference differs between tracks, e.g. the clean model's test accuracy on the
        unlearnability track and the original and retrained models on the unlearning track)."""
        return tuple(cls.needs.get(track, ())) if isinstance(cls.needs, dict) else tuple(cls.needs)


@attrs.define
class DatasetSource(Plugin):
    """A data source: fixed train/val/test splits. ``budgets`` gives default poison radii per norm."""

    family: ClassVar[str] = "dataset"
    budgets: ClassVar[dict[str, float]] = {}

    def load(self, data_dir: Path, download: bool) -> Splits:
        """Return the splits on the CPU. Raise ``dememo.errors.DatasetError`` if files are missing."""
        raise NotImplementedError


@attrs.define
class Architecture(Plugin):
    """A model constructor for a given input shape (C, H, W) and number of classes."""

    family: ClassVar[str] = "architecture"

    def build(self, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        raise NotImplementedError

    def initialize(self, model: nn.Module, data: Data) -> None:
        """Data-dependent initialisation of a freshly built ``model`` (on the run's device) from the data it
        is about to be trained on, in place and without gradients — e.g. airbench's whitened first
        convolution from training patches. Standard training (and so ``original``, ``retrain`` and
        ``ctx.train``) calls it; the default does nothing. Must be deterministic given ``data``."""


@attrs.define
class Scorer(Metric):
    """A metric that also provides per-sample memorization scores of a training set: the input of
    ``memorization`` forget sets and of unlearners that treat samples by how memorized they are (RUM).
    Registered like any metric (``register_metrics``); with no ``tracks`` and no ``columns`` (the default)
    it adds no leaderboard column and only serves scores.

    ``score(data, ctx)`` returns one finite number per sample of ``data`` (a 1-D tensor, same order),
    *higher = more memorized*. A proxy that correlates negatively with memorization (confidence, for
    example) must be inverted by the scorer itself, so every consumer can rank the same way. Scores are
    computed once per training set and seed and cached. ``middle`` is the score a ``mid`` memorization
    forget set is centred on: ``None`` (the median of the scores, as the RUM code takes for proxies) or a
    fixed value on the scorer's own scale (0.5 for exact Feldman–Zhang scores).
    """

    tracks: ClassVar[tuple[Track, ...]] = ()
    middle: ClassVar[float | None] = None

    def score(self, data: Data, ctx: Context) -> torch.Tensor:
        raise NotImplementedError

    def compute(self, ev: Evaluation, ctx: Context) -> dict[str, float]:
        return {}


FAMILIES: dict[str, type[Plugin]] = {
    "poisoner": Poisoner,
    "unlearner": Unlearner,
    "attack": Attack,
    "metric": Metric,
    "dataset": DatasetSource,
    "architecture": Architecture,
}
