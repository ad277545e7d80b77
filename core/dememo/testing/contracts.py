"""Contract test classes: subclass one in a plugin's tests and set ``plugin_class`` (and ``params``).

Each checks what the harness relies on: the class is a well-formed, registered attrs plugin; its
parameters round-trip through ``--set``-style structuring; its output is deterministic under a seed; it
does not mutate its inputs; poisoners respect their budget; models keep their architecture; metrics return
exactly their declared columns; and the cache key of a configured instance is stable.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
import torch

from dememo import plugins
from dememo.budget import Budget, check_poison
from dememo.data import Task
from dememo.engine.guards import unchanged
from dememo.families import AttackData, LearnerData, Plugin, Series
from dememo.hashing import digest
from dememo.params import build
from dememo.planning.planner import Configured
from dememo.training import History

from .fixtures import evaluation_for, tiny_class_task, tiny_context, tiny_splits, tiny_task


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _first_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> str:
    """The first tensor two states differ in, in words."""
    if a.keys() != b.keys():
        return f"their tensor names ({sorted(set(a) ^ set(b))[0]!r})"
    return next((repr(k) for k in a if not torch.equal(a[k], b[k])), "nothing")


def _check_architecture(out: torch.nn.Module, model: torch.nn.Module, what: str) -> None:
    """``out`` has ``model``'s tensors, shapes and finite weights (as the runner checks), named when not."""
    have, want = out.state_dict(), model.state_dict()
    missing, extra = [k for k in want if k not in have], [k for k in have if k not in want]
    assert not missing and not extra, (f"{what} returned a model whose tensors differ: "
                                       + (f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"))
    for k, v in want.items():
        assert have[k].shape == v.shape, f"{what} returned tensor {k!r} of shape {tuple(have[k].shape)}, not {tuple(v.shape)}"
        if have[k].is_floating_point():
            assert bool(torch.isfinite(have[k]).all()), f"{what} returned NaN or infinite values in {k!r}"


class _Contract:
    plugin_class: ClassVar[type[Plugin]]
    params: ClassVar[dict[str, Any]] = {}
    #: set False for a plugin that is not installed through an entry point (e.g. registered in-process)
    check_entry_point: ClassVar[bool] = True

    def make(self) -> Plugin:
        return build(self.plugin_class, dict(self.params), f"$.{self.plugin_class.name}")

    def test_is_well_formed(self):
        cls = self.plugin_class
        assert attrs.has(cls), f"{cls.__name__} must be an attrs class (decorate it with @attrs.define)"
        assert cls.name and cls.name == cls.name.lower() and "_" not in cls.name and " " not in cls.name, \
            f"{cls.__name__}.name must be kebab-case, got {cls.name!r}"
        assert isinstance(cls.version, str) and cls.version, f"{cls.__name__}.version must be a non-empty string"
        assert cls.summary(), f"{cls.__name__} needs a docstring: its first line is shown in --list"

    def test_is_registered(self):
        if not self.check_entry_point:
            pytest.skip("plugin is not installed through an entry point")
        registry = plugins.get_registry()
        found = registry.get(self.plugin_class.family, self.plugin_class.name)
        assert found is self.plugin_class, (f"the installed {self.plugin_class.family} {self.plugin_class.name!r} is "
                                            f"{found.__module__}.{found.__name__}, not this class: reinstall (pip "
                                            "install -e .) or check the entry point")

    def test_params_round_trip(self):
        obj = self.make()
        again = build(self.plugin_class, obj.params(), "$")
        assert again == obj and again.label() == obj.label(), (
            f"params() must rebuild the plugin: {obj.params()!r} gave {again!r}, not {obj!r}")

    def test_cache_key_is_stable(self):
        a, b = Configured(self.plugin_class.family, self.make()), Configured(self.plugin_class.family, self.make())
        assert digest(a.spec()) == digest(b.spec()), f"two plugins built from the same params have different keys: {a.spec()} / {b.spec()}"
        assert digest(a.spec()) == digest(copy.deepcopy(a.spec())), "the cache key changes when its params are copied"


class PoisonerContract(_Contract):
    budget: ClassVar[Budget | None] = None  # default: the poisoner's norm with a generous tiny-data radius

    def _budget(self) -> Budget:
        norm = self.plugin_class.norm  # type: ignore[attr-defined]
        return self.budget or Budget(norm, {"linf": 16 / 255, "l2": 0.5, "l0": 1, "none": float("inf")}[norm])

    def _run(self, seed: int = 0):
        splits = tiny_splits()
        before = splits.train.x.clone()
        given = attrs.evolve(splits.train, x=splits.train.x.clone(), y=splits.train.y.clone())  # its own copy, as in a run
        obj = self.make()
        with unchanged(f"poisoner {obj.name!r}", {"splits": splits}):
            out = obj.poison(given, tiny_context(splits, seed=seed, budget=self._budget()))  # type: ignore[attr-defined]
        return splits, before, out

    def test_respects_budget(self):
        splits, _, out = self._run()
        check_poison(splits.train.x, out, self._budget())

    def test_deterministic_under_seed(self):
        a, b = self._run(0)[2], self._run(0)[2]
        assert torch.equal(a, b), f"two runs with seed 0 differ (largest difference {(a - b).abs().max():.3g}): draw from ctx.generator"

    def test_does_not_mutate_input(self):
        splits, before, _ = self._run()  # the guard names what was written in place (also a value-preserving write)
        assert torch.equal(splits.train.x, before), "the poisoner changed the shared training split"


class UnlearnerContract(_Contract):
    """An unlearner on a forget set of kind ``forget_kind``: ``random`` (``tiny_task``, 20 % at random) or
    ``class`` (``tiny_class_task``, every sample of class 0); default: ``random`` when the method declares it
    in ``forget_kinds``, else ``class``. A method of both kinds subclasses the contract twice, one per kind."""

    forget_kind: ClassVar[str | None] = None

    def _task(self, splits) -> Task:
        kinds = self.plugin_class.forget_kinds  # type: ignore[attr-defined]
        kind = self.forget_kind or ("random" if "random" in kinds else "class")
        assert kind in ("random", "class"), f"forget_kind {kind!r}: the kit has random and class forget sets"
        assert kind in kinds, f"forget_kind {kind!r} is not one of the method's forget_kinds {kinds}"
        return tiny_task(splits) if kind == "random" else tiny_class_task(splits)

    def _run(self, seed: int = 0):
        splits = tiny_splits()
        task = self._task(splits)
        ctx = tiny_context(splits, seed=seed, budget=None)
        model = ctx.train(splits.train)
        if not self.plugin_class.reads_forget:  # type: ignore[attr-defined]
            task = Task(task.retain, task.forget.subset(torch.zeros(0, dtype=torch.int64)), task.val)
        snapshot = (task.retain.x.clone(), task.forget.x.clone())
        obj = self.make()
        with unchanged(f"unlearner {obj.name!r}", {"task": task, "original": model, "splits": splits}):
            out = obj.unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=seed, budget=None))  # type: ignore[attr-defined]
        return model, task, snapshot, out

    def test_returns_same_architecture(self):
        model, _, _, out = self._run()
        assert isinstance(out, torch.nn.Module), f"unlearn returned {type(out).__name__}, expected the torch.nn.Module"
        _check_architecture(out, model, "unlearn")

    def test_deterministic_under_seed(self):
        a, b = _state(self._run(0)[3]), _state(self._run(0)[3])
        assert _same_state(a, b), f"two runs with seed 0 differ in {_first_difference(a, b)}: draw from ctx.generator"

    def test_does_not_mutate_task(self):
        _, task, (retain, forget), _ = self._run()  # the guard names what was written in place
        assert torch.equal(task.retain.x, retain), "the unlearner changed task.retain.x"
        assert torch.equal(task.forget.x, forget), "the unlearner changed task.forget.x"


class AttackContract(_Contract):
    track: ClassVar[str] = "unlearning"

    def _run(self, seed: int = 0):
        splits = tiny_splits()
        ctx = tiny_context(splits, seed=seed, budget=None)
        obj = self.make()
        who = f"attack {obj.name!r}"
        if "model" in type(obj).stages:  # type: ignore[attr-defined]
            model = ctx.train(splits.train)
            before = _state(model)
            task = tiny_task(splits) if self.track == "unlearning" else None
            with unchanged(who, {"model": model, "splits": splits, "task": task}):  # it gets a copy, as in a run
                out = obj.attack(copy.deepcopy(model), AttackData(splits, task), tiny_context(splits, seed=seed, budget=None))  # type: ignore[attr-defined]
            return model, before, out
        before_x = splits.train.x.clone()
        given = LearnerData(splits.train, splits.val, splits.test)
        with unchanged(who, {"data": splits.train, "splits": splits}):
            out = obj.train(given, tiny_context(splits, seed=seed, budget=None))  # type: ignore[attr-defined]
        assert torch.equal(splits.train.x, before_x), "a train-stage attack must not modify its data"
        if isinstance(out, tuple):
            assert len(out) == 2 and isinstance(out[1], History), \
                f"train returned a tuple of {len(out)}; return a model or (model, dememo.History)"
            out = out[0]
        return None, None, out

    @staticmethod
    def _models(out) -> list[torch.nn.Module]:
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def test_returns_models(self):
        model, _, out = self._run()
        for i, m in enumerate(self._models(out)):
            assert isinstance(m, torch.nn.Module), f"model {i} returned is {type(m).__name__}, not a torch.nn.Module"
            if model is not None:
                _check_architecture(m, model, f"attack's model {i}")

    def test_deterministic_under_seed(self):
        a, b = self._models(self._run(0)[2]), self._models(self._run(0)[2])
        assert len(a) == len(b), f"two runs with seed 0 returned {len(a)} and {len(b)} models"
        for i, (x, y) in enumerate(zip(a, b)):
            sx, sy = _state(x), _state(y)
            assert _same_state(sx, sy), f"model {i} of two runs with seed 0 differs in {_first_difference(sx, sy)}"

    def test_does_not_mutate_input_model(self):
        model, before, out = self._run()
        if model is None:
            pytest.skip("train-stage attack")
        now = _state(model)  # the attack got a copy; the guard names an in-place write to what it was handed
        assert _same_state(now, before), f"the model under attack changed in {_first_difference(now, before)}"


def _same_value(a: Any, b: Any) -> bool:
    """Equal numbers (NaN equal to NaN), or equal series point for point."""
    if isinstance(a, Series) or isinstance(b, Series):
        return (isinstance(a, Series) and isinstance(b, Series) and a.x == b.x and a.x_name == b.x_name
                and all(_same_value(u, v) for u, v in zip(a.y, b.y)))
    return a == b or (a != a and b != b)


class MetricContract(_Contract):
    track: ClassVar[str | None] = None  # default: the metric's first track

    def _run(self, seed: int = 0) -> dict[str, float]:
        tracks = self.plugin_class.tracks  # type: ignore[attr-defined]
        track = self.track or (tracks[0] if tracks else "unlearning")
        splits = tiny_splits()
        task = tiny_task(splits) if track in ("unlearning", "interplay") else None
        ctx = tiny_context(splits, seed=seed, budget=None)
        model = ctx.train(task.retain if task else splits.train)
        # interplay: the kit's owner share is the forget set itself (its clean and released images coincide)
        ev = evaluation_for(model, splits, track, task, seed, owner_share=task.forget if track == "interplay" else None)
        obj = self.make()
        with unchanged(f"metric {obj.name!r}", {"model": model, "splits": splits, "task": task}):
            return obj.compute(ev, tiny_context(splits, seed=seed, budget=None))  # type: ignore[attr-defined]

    def test_returns_declared_columns(self):
        values = self._run()
        columns = self.plugin_class.columns  # type: ignore[attr-defined]
        assert isinstance(values, dict), f"compute returned {type(values).__name__}, expected a dict of columns"
        undeclared = sorted(set(values) - set(columns))
        assert not undeclared, f"compute returned {undeclared[0]!r}, which is not declared in columns ({', '.join(columns)})"
        for k, v in values.items():
            if columns[k].unit == "series":
                assert isinstance(v, Series), f"series column {k!r} must be a dememo.Series, got {type(v).__name__}"
            else:
                try:
                    float(v)
                except (TypeError, ValueError):
                    raise AssertionError(f"column {k!r} is not a number: {v!r}") from None

    def test_deterministic_under_seed(self):
        a, b = self._run(0), self._run(0)
        assert a.keys() == b.keys(), f"two runs with seed 0 returned different columns: {sorted(a)} / {sorted(b)}"
        for k in a:
            assert _same_value(a[k], b[k]), f"column {k} differs between identical runs"

    def test_columns_are_documented(self):
        for key, column in self.plugin_class.columns.items():  # type: ignore[attr-defined]
            assert key == key.lower() and " " not in key and "-" not in key, f"column key {key!r} must be snake_case"
            assert column.description, f"column {key!r} needs a description (shown in the HTML help panel)"
            assert column.direction in ("higher", "lower", "match", "info"), \
                f"column {key!r} has direction {column.direction!r}; use higher, lower, match or info"


class ScorerContract(MetricContract):
    """A ``dememo.Scorer``: the metric contract plus one finite, deterministic score per sample."""

    def test_scorer_gives_one_finite_deterministic_score_per_sample(self):
        splits = tiny_splits()
        runs = []
        for _ in range(2):
            obj = self.make()
            with unchanged(f"scorer {obj.name!r}", {"train": splits.train, "splits": splits}):
                runs.append(obj.score(splits.train, tiny_context(splits, seed=0, budget=None)))  # type: ignore[attr-defined]
        shape = tuple(runs[0].shape) if isinstance(runs[0], torch.Tensor) else type(runs[0]).__name__
        assert shape == (len(splits.train),), f"score returned {shape}, expected one score per sample ({len(splits.train)},)"
        assert bool(torch.isfinite(runs[0]).all()), "score returned NaN or infinite scores"
        assert torch.equal(runs[0], runs[1]), "two runs with seed 0 gave different scores: draw from ctx.generator"


class DatasetContract(_Contract):
    """A dataset source: ``load`` gives ``dememo.Splits`` whose three splits share one image shape and class
    count, with float images in [0, 1], integer labels 0…K−1 (every class in the training split), on the CPU,
    the same on every load. ``data_dir`` is an empty temporary directory unless a test sets it (a dataset
    that reads files points it at a small copy of them); nothing is downloaded."""

    data_dir: ClassVar[str | None] = None

    def _load(self, tmp_path) -> Any:
        from dememo.data import Splits

        obj = self.make()
        out = obj.load(Path(self.data_dir) if self.data_dir else tmp_path, False)  # type: ignore[attr-defined]
        assert isinstance(out, Splits), f"load returned {type(out).__name__}, expected a dememo.Splits"
        return out

    def test_splits_are_well_formed(self, tmp_path):
        splits = self._load(tmp_path)
        for name in ("train", "val", "test"):
            part = getattr(splits, name)
            assert len(part) > 0, f"the {name} split is empty"
            assert part.x.device.type == "cpu", f"the {name} split is on {part.x.device}; load returns CPU tensors"
            assert part.x.dtype == torch.float32, f"{name}.x is {part.x.dtype}; images are float32 in [0, 1]"
            assert part.shape == splits.train.shape, f"{name} images are {part.shape}, train images {splits.train.shape}"
            assert part.num_classes == splits.num_classes, f"{name} has {part.num_classes} classes, train {splits.num_classes}"
            lo, hi = float(part.x.min()), float(part.x.max())
            assert 0.0 <= lo and hi <= 1.0, f"{name}.x lies in [{lo:.3g}, {hi:.3g}]; images must lie in [0, 1]"
            assert part.y.dtype == torch.int64 and int(part.y.min()) >= 0 and int(part.y.max()) < splits.num_classes, \
                f"{name}.y must be int64 labels 0…{splits.num_classes - 1}"
            assert part.fingerprint, f"{name} has no fingerprint (build it with dememo.Data.from_tensors)"
        missing = sorted(set(range(splits.num_classes)) - set(splits.train.y.tolist()))
        assert not missing, f"class {missing[0]} has no training sample"

    def test_loads_the_same_data_every_time(self, tmp_path):
        a, b = self._load(tmp_path), self._load(tmp_path)
        for name in ("train", "val", "test"):
            x, y = getattr(a, name), getattr(b, name)
            assert torch.equal(x.x, y.x) and torch.equal(x.y, y.y), f"two loads give different {name} splits: seed any draw"
            assert x.fingerprint == y.fingerprint, f"two loads give {name} different fingerprints"

    def test_budgets_name_known_norms(self):
        for norm, eps in self.plugin_class.budgets.items():  # type: ignore[attr-defined]
            assert norm in ("linf", "l2", "l0"), f"budgets key {norm!r} is not a norm (linf, l2, l0)"
            assert isinstance(eps, (int, float)) and eps > 0, f"budgets[{norm!r}] = {eps!r} must be a positive radius"


class ArchitectureContract(_Contract):
    """A model constructor: ``build(input_shape, num_classes)`` gives a module that maps a batch N×C×H×W to
    N×num_classes finite logits, the same weights under the same torch seed, and one that trains on tiny data
    (``initialize`` included). ``shapes``: the input shapes to build for."""

    shapes: ClassVar[tuple[tuple[int, int, int], ...]] = ((1, 8, 8), (3, 8, 8))
    num_classes: ClassVar[int] = 3

    def _build(self, shape: tuple[int, int, int], seed: int = 0) -> torch.nn.Module:
        obj = self.make()
        torch.manual_seed(seed)
        model = obj.build(shape, self.num_classes)  # type: ignore[attr-defined]
        assert isinstance(model, torch.nn.Module), f"build returned {type(model).__name__}, not a torch.nn.Module"
        return model

    def test_maps_a_batch_to_logits(self):
        for shape in self.shapes:
            model = self._build(shape).eval()
            with torch.no_grad():
                out = model(torch.rand(5, *shape))
            assert tuple(out.shape) == (5, self.num_classes), \
                f"input {shape}: the model returned shape {tuple(out.shape)}, expected (5, {self.num_classes})"
            assert bool(torch.isfinite(out).all()), f"input {shape}: the logits are not finite"

    def test_same_weights_under_the_same_seed(self):
        a, b = _state(self._build(self.shapes[0], 0)), _state(self._build(self.shapes[0], 0))
        assert _same_state(a, b), f"two builds under seed 0 differ in {_first_difference(a, b)}: draw from torch's seeded RNG"

    def test_trains_on_tiny_data(self):
        splits = tiny_splits(shape=self.shapes[0], num_classes=self.num_classes)
        ctx = tiny_context(splits, budget=None, architecture=self.make())  # type: ignore[arg-type]
        model = ctx.train(splits.train)  # initialize() runs here, as in standard training
        acc = ctx.accuracy(model, splits.test)
        assert acc > 1.5 / self.num_classes, f"test accuracy {acc:.2f} after standard training on tiny data: it does not learn"
