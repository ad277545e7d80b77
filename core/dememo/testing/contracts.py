"""Contract test classes: subclass one in a plugin's tests and set ``plugin_class`` (and ``params``).

Each checks what the harness relies on: the class is a well-formed, registered attrs plugin; its
parameters round-trip through ``--set``-style structuring; its output is deterministic under a seed; it
does not mutate its inputs; poisoners respect their budget; models keep their architecture; metrics return
exactly their declared columns; and the cache key of a configured instance is stable.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import attrs
import pytest
import torch

from dememo import plugins
from dememo.budget import Budget, check_poison
from dememo.data import Task
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


class _Contract:
    plugin_class: ClassVar[type[Plugin]]
    params: ClassVar[dict[str, Any]] = {}
    #: set False for a plugin that is not installed through an entry point (e.g. registered in-process)
    check_entry_point: ClassVar[bool] = True

    def make(self) -> Plugin:
        return build(self.plugin_class, dict(self.params), f"$.{self.plugin_class.name}")

    def test_is_well_formed(self):
        cls = self.plugin_class
        assert attrs.has(cls), "a plugin class must be an attrs class"
        assert cls.name and cls.name == cls.name.lower() and "_" not in cls.name, "name must be kebab-case"
        assert isinstance(cls.version, str) and cls.version
        assert cls.summary(), "the class docstring's first line is shown in --list"

    def test_is_registered(self):
        if not self.check_entry_point:
            pytest.skip("plugin is not installed through an entry point")
        registry = plugins.get_registry()
        assert registry.get(self.plugin_class.family, self.plugin_class.name) is self.plugin_class

    def test_params_round_trip(self):
        obj = self.make()
        again = build(self.plugin_class, obj.params(), "$")
        assert again == obj and again.label() == obj.label()

    def test_cache_key_is_stable(self):
        a, b = Configured(self.plugin_class.family, self.make()), Configured(self.plugin_class.family, self.make())
        assert digest(a.spec()) == digest(b.spec())
        assert digest(a.spec()) == digest(copy.deepcopy(a.spec()))


class PoisonerContract(_Contract):
    budget: ClassVar[Budget | None] = None  # default: the poisoner's norm with a generous tiny-data radius

    def _budget(self) -> Budget:
        norm = self.plugin_class.norm  # type: ignore[attr-defined]
        return self.budget or Budget(norm, {"linf": 16 / 255, "l2": 0.5, "l0": 1, "none": float("inf")}[norm])

    def _run(self, seed: int = 0):
        splits = tiny_splits()
        before = splits.train.x.clone()
        out = self.make().poison(splits.train, tiny_context(splits, seed=seed, budget=self._budget()))  # type: ignore[attr-defined]
        return splits, before, out

    def test_respects_budget(self):
        splits, _, out = self._run()
        check_poison(splits.train.x, out, self._budget())

    def test_deterministic_under_seed(self):
        assert torch.equal(self._run(0)[2], self._run(0)[2])

    def test_does_not_mutate_input(self):
        splits, before, _ = self._run()
        assert torch.equal(splits.train.x, before)


class UnlearnerContract(_Contract):
    def _run(self, seed: int = 0):
        splits = tiny_splits()
        kinds = self.plugin_class.forget_kinds  # type: ignore[attr-defined]
        task = tiny_task(splits) if "random" in kinds else tiny_class_task(splits)
        ctx = tiny_context(splits, seed=seed, budget=None)
        model = ctx.train(splits.train)
        if not self.plugin_class.reads_forget:  # type: ignore[attr-defined]
            task = Task(task.retain, task.forget.subset(torch.zeros(0, dtype=torch.int64)), task.val)
        snapshot = (task.retain.x.clone(), task.forget.x.clone())
        out = self.make().unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=seed, budget=None))  # type: ignore[attr-defined]
        return model, task, snapshot, out

    def test_returns_same_architecture(self):
        model, _, _, out = self._run()
        assert isinstance(out, torch.nn.Module)
        assert {k: v.shape for k, v in out.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
        assert all(torch.isfinite(v).all() for v in out.state_dict().values() if v.is_floating_point())

    def test_deterministic_under_seed(self):
        assert _same_state(_state(self._run(0)[3]), _state(self._run(0)[3]))

    def test_does_not_mutate_task(self):
        _, task, (retain, forget), _ = self._run()
        assert torch.equal(task.retain.x, retain) and torch.equal(task.forget.x, forget)


class AttackContract(_Contract):
    track: ClassVar[str] = "unlearning"

    def _run(self, seed: int = 0):
        splits = tiny_splits()
        ctx = tiny_context(splits, seed=seed, budget=None)
        obj = self.make()
        if "model" in type(obj).stages:  # type: ignore[attr-defined]
            model = ctx.train(splits.train)
            before = _state(model)
            task = tiny_task(splits) if self.track == "unlearning" else None
            out = obj.attack(model, AttackData(splits, task), tiny_context(splits, seed=seed, budget=None))  # type: ignore[attr-defined]
            return model, before, out
        before_x = splits.train.x.clone()
        given = LearnerData(splits.train, splits.val, splits.test)
        out = obj.train(given, tiny_context(splits, seed=seed, budget=None))  # type: ignore[attr-defined]
        assert torch.equal(splits.train.x, before_x), "a train-stage attack must not modify its data"
        if isinstance(out, tuple):
            assert len(out) == 2 and isinstance(out[1], History), "train returns a model or (model, History)"
            out = out[0]
        return None, None, out

    @staticmethod
    def _models(out) -> list[torch.nn.Module]:
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def test_returns_models(self):
        model, _, out = self._run()
        for m in self._models(out):
            assert isinstance(m, torch.nn.Module)
            if model is not None:
                assert {k: v.shape for k, v in m.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}

    def test_deterministic_under_seed(self):
        a, b = self._models(self._run(0)[2]), self._models(self._run(0)[2])
        assert len(a) == len(b) and all(_same_state(_state(x), _state(y)) for x, y in zip(a, b))

    def test_does_not_mutate_input_model(self):
        model, before, out = self._run()
        if model is None:
            pytest.skip("train-stage attack")
        if any(m is model for m in self._models(out)):
            return  # returning the input unchanged is allowed (e.g. the identity attack)
        assert _same_state(_state(model), before)


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
        return self.make().compute(ev, tiny_context(splits, seed=seed, budget=None))  # type: ignore[attr-defined]

    def test_returns_declared_columns(self):
        values = self._run()
        columns = self.plugin_class.columns  # type: ignore[attr-defined]
        assert set(values) <= set(columns), "every returned key must be declared in columns"
        for k, v in values.items():
            if columns[k].unit == "series":
                assert isinstance(v, Series), f"series column {k} must be a dememo.Series"
            else:
                assert isinstance(float(v), float)

    def test_deterministic_under_seed(self):
        a, b = self._run(0), self._run(0)
        assert a.keys() == b.keys()
        for k in a:
            assert _same_value(a[k], b[k]), f"column {k} differs between identical runs"

    def test_columns_are_documented(self):
        for key, column in self.plugin_class.columns.items():  # type: ignore[attr-defined]
            assert key == key.lower() and " " not in key, "metric keys are snake_case"
            assert column.description and column.direction in ("higher", "lower", "match", "info")


class ScorerContract(MetricContract):
    """A ``dememo.Scorer``: the metric contract plus one finite, deterministic score per sample."""

    def test_scorer_gives_one_finite_deterministic_score_per_sample(self):
        splits = tiny_splits()
        runs = [self.make().score(splits.train, tiny_context(splits, seed=0, budget=None)) for _ in range(2)]  # type: ignore[attr-defined]
        assert tuple(runs[0].shape) == (len(splits.train),) and bool(torch.isfinite(runs[0]).all())
        assert torch.equal(runs[0], runs[1])
