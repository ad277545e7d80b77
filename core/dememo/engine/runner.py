"""Execute cells stage by stage: every stage a pure function of its inputs, stored content-addressed.

Stages and what their key hashes (besides the dataset, architecture, recipe and seed):

- ``train``    standard training on some data: the data's fingerprint. ``original``, ``retrained``,
               ``clean`` and the ``retrain`` unlearner are all this stage, so each is computed once.
- ``poison``   poisoner name, version, parameters and budget. The perturbation δ is stored, not images.
- ``train-attack``  a learner-side attack on the (poisoned) training data.
- ``unlearn``  unlearner spec, the original model's key and the forget set.
- ``attack``   model-stage attack spec and the attacked model's key.
- ``metric``   metric spec, evaluated model key, reference keys and the specs of metrics it uses.

A plugin exception fails the stage; every cell that needs that stage fails with the same one-line reason
and its traceback, and all other cells go on. That holds for whatever a plugin raises or calls: a
``dememo.UserError`` (an error of the plugin's, not of this run's input), ``sys.exit()``, a
``KeyboardInterrupt`` that no signal caused (``dememo.interrupts``); only a full disk (``StorageError``)
and the user's Ctrl-C stop the run. A dataset that fails to load fails that dataset's cells.

What a plugin may not change (each stage is guarded, and the guard names the plugin):
- shared tensors, in place: its inputs and everything the harness hands it while it runs (``guards``);
  once a guard fires, everything held in memory is reloaded from the cache, for later cells and for the
  same cell's remaining metrics;
- its own parameters (they are the cache key, and the object is shared by the cells of its row);
- torch's process-wide settings and RNG states (``globalstate``: restored after every stage).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import attrs
import torch
from torch import nn

from dememo import forget, interrupts
from dememo.budget import Budget, check_poison
from dememo.context import Context, seeded_generator, standard_training
from dememo.data import Data, Splits, Task
from dememo.ensemble import Ensemble, fit_many
from dememo.errors import ContractViolation, DatasetError, UserError
from dememo.evaluation import Evaluation
from dememo.families import AttackData, LearnerData, Metric, Series
from dememo.hashing import derive_seed, digest, tensor_digest
from dememo.params import parse_label
from dememo.planning.planner import Cell, Configured, DatasetConfig, Planner
from dememo.progress import Progress
from dememo.results import clean_number
from dememo.engine import globalstate
from dememo.engine.cache import Store
from dememo.engine.failures import StageFailure, escaped, first_line, one_line, user_stop
from dememo.engine.guards import Watch, unchanged
from dememo.engine.memo import StageInfo, StageMemo
from dememo.training import History, place

#: bump when the meaning of a stage changes in core, to invalidate old cache entries
STAGE_VERSION = "2"


def poison_subset(n: int, ratio: float, dataset: str, seed: int) -> torch.Tensor:
    """Which training samples carry the poison at a given ratio: a boolean mask of ``round(ratio·n)``
    samples, the first positions of one permutation seeded by (dataset fingerprint, seed). The subset is
    the same for every poisoner (a fair comparison) and nested across ratios (a sweep adds samples)."""
    return forget.first_of_permutation(n, round(ratio * n), "poison-subset", dataset, seed)


def describe_subset(mask: torch.Tensor, ratio: float) -> dict[str, Any]:
    """How a result records the poisoned subset: ratio, count, and a digest of the sorted positions (the
    positions themselves follow from ``poison_subset`` and the dataset fingerprint and seed)."""
    positions = mask.nonzero().flatten()
    return {"ratio": ratio, "count": int(len(positions)), "positions_sha256": digest(positions.tolist()),
            "rule": "first round(ratio*n) of randperm(n) seeded by derive_seed('poison-subset', dataset, seed)"}


def needs_of(metric: Configured, track: str, quiet: bool = False) -> tuple[str, ...]:
    """The references ``metric`` declares for ``track``; a declaration that raises fails that metric (a
    StageFailure naming it), or with ``quiet`` counts as none (its own stage then fails)."""
    try:
        return tuple(type(metric.obj).needs_on(track))  # type: ignore[attr-defined]
    except BaseException as exc:
        if user_stop(exc):
            raise
        if quiet:
            return ()
        who = f"metric {metric.name!r}.needs_on()"
        raise StageFailure(f"metric:{metric.name}", escaped(exc, who) or f"{who} raised {one_line(exc)}",
                           traceback.format_exc()) from None


def _copy(value: Any) -> Any:
    """``value`` itself when immutable (most parameters: numbers, strings, tuples of them), else a deep copy."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (tuple, frozenset)) and all(_copy(v) is v for v in value):
        return value
    return copy.deepcopy(value)


def _state(obj: Any) -> str:
    """A digest of an attrs object's fields (a plugin's parameters, the training recipe)."""
    return digest(attrs.asdict(obj, recurse=True))


#: a model handed out by a stage: called when its weights are needed (a cached model is loaded only then)
Load = Callable[[], nn.Module]


class ModelStage(NamedTuple):
    """What a stage that makes a model returns: the model (``load``: a cached one is read when first asked
    for, ``StageMemo.deferred``), its stage key (what later stages key on), how the stage ran, and what else
    it recorded: standard training's metadata (with its ``history``), a learner-side attack's history, an
    unlearner's ``dememo_record``; None where there is nothing."""

    load: Load
    key: str
    info: StageInfo
    meta: Any = None

    @property
    def model(self) -> nn.Module:
        return self.load()


class PoisonStage(NamedTuple):
    """The poison stage: the training data (clean plus δ), how the stage ran, and the poisoned subset's
    description when the poison covers only part of the set (else None)."""

    data: Data
    info: StageInfo
    subset: dict[str, Any] | None


class AttackStage(NamedTuple):
    """The model-stage attack: every drawn (model loader, key) and how the stage ran."""

    draws: list[tuple[Load, str]]
    info: StageInfo


@attrs.define
class CellState:
    """What one cell's stages share while it runs, fresh for every cell: the evaluations built per model
    key, the costs the run-time metrics read, and the interplay cell's owner share (clean images)."""

    evals: dict[str, Evaluation] = attrs.field(factory=dict)
    costs: dict[str, float] = attrs.field(factory=dict)
    owner_share: Data | None = None


@attrs.define(eq=False)
class DatasetEnv:
    """A loaded dataset on the run's device, with its architecture and the keys common to its stages."""

    config: DatasetConfig
    splits: Splits
    fingerprint: str
    device: torch.device
    template: dict[str, tuple[int, ...]] = attrs.field(factory=dict)

    def base(self, seed: int) -> dict[str, Any]:
        """What every stage's key holds. Poison budgets are left out (the poison stage hashes its own), so
        declaring a budget for another norm does not re-draw the seeds of unrelated stages."""
        spec = {k: v for k, v in self.config.spec().items() if k != "budgets"}
        return {"v": STAGE_VERSION, "dataset": self.fingerprint, **spec, "seed": seed}

    def build(self) -> nn.Module:
        return place(self.config.architecture.obj.build(self.splits.shape, self.splits.num_classes), self.device)  # type: ignore[attr-defined]


class Runner:
    def __init__(self, store: Store, device: torch.device, progress: Progress | None = None, data_dir: Any = None,
                 download: bool = False, memory_bytes: int = 2 * 2**30, planner: Planner | None = None):
        self.store = store
        #: builds the plugins that composing methods call (``ctx.plugin``) and the scorers of forget sets
        self.planner = planner
        self.device = device
        self.progress = progress or Progress(show=False)
        self.data_dir = data_dir
        self.download = download
        #: stage outputs: from memory, the disk cache or their computation, once (``run.memo``)
        self.memo = StageMemo(store, memory_bytes, self.drop_shared)
        self.envs: dict[str, DatasetEnv] = {}
        #: whether the metric being computed declared ``replays`` (may call ``ev.unlearn_many``)
        self._replays = False
        #: (plugin, torch setting) pairs already warned about in this run (``globalstate.preserved``)
        self._warned: set[tuple[str, str]] = set()
        #: datasets that failed to load: config key → the error (their cells fail without retrying)
        self.bad_envs: dict[str, DatasetError] = {}

    # -- datasets ----------------------------------------------------------------------------------

    def env(self, config: DatasetConfig) -> DatasetEnv:
        """The loaded dataset of ``config``; a DatasetError naming the dataset and its plugin when it cannot be
        loaded (remembered: the dataset's later cells fail at once)."""
        key = digest(config.spec())
        if key in self.bad_envs:
            raise self.bad_envs[key]
        if key not in self.envs:
            from pathlib import Path

            source = config.dataset.obj
            data_dir = Path(self.data_dir) if self.data_dir else Path.home() / ".cache" / "dememo" / "data"
            who = f"dataset plugin {config.dataset.label!r}"
            step = "failed to load"
            try:
                with globalstate.preserved(who, self._warned):
                    splits = source.load(data_dir, self.download)  # type: ignore[attr-defined]
                if not isinstance(splits, Splits):
                    raise ContractViolation(f"{who} returned {type(splits).__name__}, expected a dememo.Splits")
                splits = splits.to(self.device)
                fp = digest([config.dataset.spec(), splits.train.fingerprint, splits.val.fingerprint, splits.test.fingerprint])
                env = DatasetEnv(config, splits, fp, self.device)
                step, who = "cannot build its model", f"architecture plugin {config.architecture.label!r}"
                with globalstate.preserved(who, self._warned):
                    env.template = {k: tuple(v.shape) for k, v in env.build().state_dict().items()}
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt) and interrupts.from_user(exc):
                    raise
                text = first_line(exc) if isinstance(exc, UserError) and first_line(exc) else \
                    (escaped(exc, "it") or one_line(exc))
                error = DatasetError(f"dataset {config.name!r} ({who}) {step}: {text}")
                self.bad_envs[key] = error
                raise error from exc
            self.envs[key] = env
        return self.envs[key]

    def context(self, env: DatasetEnv, seed: int, key: str, budget: Budget | None = None) -> Context:
        torch.manual_seed(derive_seed(seed, key, "global") % (2**63))  # for plugins that use the global RNG
        return Context(
            device=self.device,
            seed=seed,
            generator=seeded_generator(derive_seed(seed, key), self.device),
            recipe=env.config.entry.recipe,
            architecture=env.config.architecture.obj,  # type: ignore[arg-type]
            input_shape=env.splits.shape,
            num_classes=env.splits.num_classes,
            budget=budget,
            reporter=self.progress,
            trainer=lambda data: self._trainer_copy(env, data, seed),
            scorer=lambda name: self.scores(env, name, seed),
            maker=lambda family, name, params: self._single(env, family, name, params).obj,
            ensembler=lambda data, subsets, seeds: self.ensemble(env, data, subsets, seeds, seed),
        )

    def _single(self, env: DatasetEnv, family: str, name: str, params: dict[str, Any]) -> Configured:
        if self.planner is None:
            raise RuntimeError("this runner has no planner: it cannot build other plugins or scorers")
        return self.planner.single(family, name, params, env.config.entry)

    def _trainer_copy(self, env: DatasetEnv, data: Data, seed: int) -> tuple[nn.Module, Any]:
        stage = self.standard(env, data, seed)
        if stage.info.cached:  # a stage that reuses a cached training is billed its cost (retrain's run time is a training)
            self.memo.borrowed += stage.info.seconds
        return copy.deepcopy(stage.model), stage.meta.get("history")

    def drop_shared(self) -> None:
        """Forget every dataset and stage output held in memory (after a plugin modified one in place):
        later cells reload them from disk and the cache."""
        self.memo.clear()
        self.envs.clear()

    # -- models ------------------------------------------------------------------------------------

    def _check_model(self, env: DatasetEnv, model: Any, who: str) -> dict[str, torch.Tensor]:
        if not isinstance(model, nn.Module):
            raise ContractViolation(f"{who} returned {type(model).__name__}, expected a torch.nn.Module")
        state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        if shapes != env.template:
            raise ContractViolation(f"{who} changed the model architecture (parameter names or shapes differ)")
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ContractViolation(f"{who} returned non-finite weights in {len(bad)} tensors (first: {bad[0]})")
        return state

    def _load(self, env: DatasetEnv, state: dict[str, torch.Tensor]) -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the global RNG as it was
            model = env.build()
        model.load_state_dict(state)
        model.eval()
        return model

    def _models_stage(self, env: DatasetEnv, key: str, name: str, produce: Callable[[], Any], who: str,
                      extra: Callable[[], dict[str, Any]] | None = None, source: Load | None = None
                      ) -> tuple[Callable[[], list[nn.Module]], dict[str, Any], StageInfo]:
        """A stage that makes one or more models: their loader (read from the cache only when called), its
        metadata (``count``: how many) and how it ran. With a ``source``, ``produce`` gets that model, loaded
        before the stage starts (``StageMemo.stage``'s ``inputs``)."""
        def compute(*given):
            out = produce(*given)
            outs = out if isinstance(out, (list, tuple)) else [out]
            if not outs:
                raise ContractViolation(f"{who} returned no model")
            states = [self._check_model(env, m, who) for m in outs]
            models = [self._load(env, s) for s in states]
            return models, {"models": states}, {"count": len(models), **(extra() if extra else {})}

        def decode(meta, payload):
            return [self._load(env, s) for s in payload["models"]]

        return self.memo.deferred(key, name, compute, decode, who, source)

    @contextlib.contextmanager
    def _guard(self, who: str, plugin: Any, env: DatasetEnv, **shared: Any) -> Iterator[Watch]:
        """A plugin call: ``shared`` (and every stage output handed out meanwhile) must not change in place,
        nor may the parameters of the plugin or of the dataset's architecture and source (``ctx.architecture``):
        they are cache keys, and the objects serve every cell of their rows, so a change is undone and fails
        the stage. Torch's global settings are restored as soon as it returns, before the harness builds
        anything from its output."""
        objects = {id(o): o for o in (plugin, env.config.architecture.obj, env.config.dataset.obj, env.config.entry.recipe)}
        saved = {i: ({f.name: _copy(getattr(o, f.name)) for f in attrs.fields(type(o))}, _state(o))
                 for i, o in objects.items()}
        moved: list[Any] = []
        try:
            with unchanged(who, shared, self.memo.watches) as watch, globalstate.preserved(who, self._warned):
                yield watch
        finally:
            for i, o in objects.items():
                fields, before = saved[i]
                if _state(o) != before:
                    moved.append(o)
                    for name, value in fields.items():
                        object.__setattr__(o, name, value)
        if moved:
            whose = "its own parameters" if moved[0] is plugin else \
                f"the parameters of {getattr(type(moved[0]), 'name', '') or type(moved[0]).__name__!r}"
            raise ContractViolation(f"{who} changed {whose} while running (they are cache keys, shared by other "
                                    "cells): keep working state in local variables")

    # -- stages ------------------------------------------------------------------------------------

    @staticmethod
    def train_key(env: DatasetEnv, data: Data, seed: int) -> str:
        """The key of standard training on ``data``: the one place it is defined."""
        return digest({**env.base(seed), "stage": "train", "data": data.fingerprint})

    def standard(self, env: DatasetEnv, data: Data, seed: int) -> ModelStage:
        """Standard training on ``data`` (shared by original, retrained, clean and the retrain unlearner)."""
        key = self.train_key(env, data, seed)
        history: dict[str, Any] = {}

        who = f"architecture {env.config.architecture.label!r}"

        def produce():
            ctx = self.context(env, seed, key)
            with self._guard(who, env.config.architecture.obj, env, data=data, splits=env.splits):
                model, hist = standard_training(ctx, data, eval_data=env.splits.test)
            history["history"] = hist.to_json()
            return model

        models, meta, info = self._models_stage(env, key, "train", produce, who, extra=lambda: history)
        return ModelStage(lambda: models()[0], key, info, meta)

    def ensemble(self, env: DatasetEnv, data: Data, subsets: torch.Tensor, seeds: tuple[int, ...], seed: int) -> Ensemble:
        """Many standard trainings at once (``dememo.ensemble``), one cached stage per (data, subsets, seeds)."""
        masks = torch.as_tensor(subsets).to("cpu")
        key = digest({**env.base(seed), "stage": "ensemble", "data": data.fingerprint, "seeds": list(seeds),
                      "subsets": tensor_digest(masks.to(torch.uint8))})

        who = f"architecture {env.config.architecture.label!r}"

        def compute():
            with self._guard(who, env.config.architecture.obj, env, data=data, splits=env.splits):
                ens = fit_many(self.context(env, seed, key), data, masks.to(data.device), seeds, desc=f"ensemble of {len(seeds)}")
            return ens, ens.to_payload(), {"members": len(seeds)}

        ens, _, _ = self.memo.stage(key, "ensemble", compute,
                                lambda meta, payload: Ensemble.from_payload(payload, env.build(), self.device), who)
        ens.key = key
        return ens

    def poisoned(self, env: DatasetEnv, cell: Cell, ratio: float | None = None) -> PoisonStage:
        """The cell's training data: the clean split plus the stored δ, on the poisoned subset when the
        poisoner's ``ratio`` (or the given ``ratio``: the interplay track's owner share) is < 1 (then also
        the subset's description for the result, else None)."""
        assert cell.poisoner is not None
        poisoner = cell.poisoner.obj
        norm = type(poisoner).norm  # type: ignore[attr-defined]
        if norm != "none" and norm not in env.config.budgets:
            raise StageFailure("poison", f"suite gives no {norm} budget for dataset {env.config.name!r}", "")
        budget = Budget(norm, env.config.budgets.get(norm, math.inf))
        spec = cell.poisoner.spec()
        own = spec["params"].pop("ratio", 1.0)  # δ covers the whole set; the ratio only selects where it applies
        ratio = own if ratio is None else ratio
        key = digest({**env.base(cell.seed), "stage": "poison", "poisoner": spec, "budget": attrs.asdict(budget)})
        clean = env.splits.train
        who = f"poisoner {cell.poisoner.label!r}"

        def compute():
            ctx = self.context(env, cell.seed, key, budget)
            given = attrs.evolve(clean, x=clean.x.clone(), y=clean.y.clone())  # its own copy to work on
            with self._guard(who, poisoner, env, splits=env.splits):
                out = poisoner.poison(given, ctx)  # type: ignore[attr-defined]
            check_poison(clean.x, out, budget)
            delta = (out.to(clean.x.dtype) - clean.x).to("cpu")
            return delta, {"delta": delta}, {"budget": attrs.asdict(budget)}

        delta, meta, info = self.memo.stage(key, "poison", compute, lambda meta, payload: payload["delta"], who)
        delta = delta.to(self.device)
        tag: list[Any] = ["poisoned", key]
        subset = None
        if ratio < 1:
            chosen = poison_subset(len(clean), ratio, env.fingerprint, cell.seed)
            subset = describe_subset(chosen, ratio)
            delta = delta * chosen.to(self.device).view(-1, *[1] * (delta.dim() - 1)).to(delta.dtype)
            tag.append(ratio)
        if not bool(delta.any()):
            return PoisonStage(clean, info, subset)  # an identity poison keeps the clean data's identity (shares its models)
        poisoned = clean.with_images((clean.x + delta).clamp_(0, 1), digest(tag))
        return PoisonStage(poisoned, info, subset)

    def trained(self, env: DatasetEnv, cell: Cell, data: Data) -> ModelStage:
        """The unlearnability track's model: standard training, or a learner-side (train-stage) attack."""
        assert cell.train_attack is not None
        attack = cell.train_attack
        if attack.name == "none":
            stage = self.standard(env, data, cell.seed)
            return stage._replace(meta=stage.meta.get("history"))
        key = digest({**env.base(cell.seed), "stage": "train-attack", "attack": attack.spec(), "data": data.fingerprint})
        history: dict[str, Any] = {}
        who = f"attack {attack.label!r}"

        def produce():
            ctx = self.context(env, cell.seed, key)
            with self._guard(who, attack.obj, env, data=data, splits=env.splits):
                out = attack.obj.train(LearnerData(data, env.splits.val, env.splits.test), ctx)  # type: ignore[attr-defined]
            if isinstance(out, tuple):
                if len(out) != 2 or not isinstance(out[1], History):
                    raise ContractViolation(f"{who} returned a tuple; expected a model or (model, History)")
                out, hist = out
                history["history"] = hist.to_json()
            return out

        models, meta, info = self._models_stage(env, key, "train-attack", produce, who, extra=lambda: history)
        return ModelStage(lambda: models()[0], key, info, meta.get("history"))

    def scores(self, env: DatasetEnv, name: str, seed: int) -> torch.Tensor:
        """Memorization scores of the training split from scorer ``name`` (a cached stage), on the CPU."""
        values, info = self.scores_stage(env, name, seed)
        if info.cached:  # like a reused training: a stage that reads the scores is billed their cost
            self.memo.borrowed += info.seconds
        return values

    def scores_stage(self, env: DatasetEnv, name: str, seed: int) -> tuple[torch.Tensor, StageInfo]:
        """:meth:`scores` with how its stage ran (nothing billed)."""
        try:
            if self.planner is not None:
                self.planner.scorer_class(name)  # a metric that gives no scores is a clear error
            scorer = self._single(env, "metric", name, {})
        except UserError as exc:
            raise StageFailure(f"scores:{name}", str(exc), "") from None
        key = digest({**env.base(seed), "stage": "scores", "scorer": scorer.spec(), "data": env.splits.train.fingerprint})
        train = env.splits.train

        who = f"scorer {name!r}"

        def compute():
            with self._guard(who, scorer.obj, env, train=train, splits=env.splits):
                out = scorer.obj.score(train, self.context(env, seed, key))  # type: ignore[attr-defined]
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(train),):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ContractViolation(f"scorer {name!r} returned {shape}, expected one score per training sample ({len(train)},)")
            values = out.detach().to("cpu", torch.float32)
            if not torch.isfinite(values).all():
                raise ContractViolation(f"scorer {name!r} returned non-finite scores")
            return values, {"scores": values}, {}

        values, _, info = self.memo.stage(key, f"scores:{name}", compute, lambda meta, payload: payload["scores"], who)
        return values, info

    def task(self, env: DatasetEnv, cell: Cell) -> Task:
        """The cell's forget set (``dememo.forget``) and the retain set left by it."""
        spec, train = cell.forget, env.splits.train
        assert spec is not None
        if spec.kind == "random":
            mask = forget.random_mask(len(train), spec.fraction, cell.seed, spec.to_json())
        elif spec.kind == "class":
            mask = forget.class_mask(train.y, spec.classes, train.num_classes, env.config.name)
        else:
            scores = self.scores(env, spec.scorer, cell.seed)
            middle = getattr(self.planner.scorer_class(spec.scorer), "middle", None)  # type: ignore[union-attr]
            mask = forget.memorization_mask(scores, spec.stratum, spec.fraction, cell.seed, spec.to_json(),
                                            selection=spec.selection, middle=middle)
        return forget.split(train, mask, spec.to_json(), cell.seed, env.splits.val)

    def interplay_task(self, env: DatasetEnv, cell: Cell, mixture: Data) -> tuple[Task, Data]:
        """The interplay cell's task over the ``mixture`` it trained on, and the owner's share as clean
        images. Target ``share``: forget the owner's (poisoned) share. Target ``clean``: forget
        ``clean_forget``·n samples drawn from outside the share (a seeded permutation of those positions),
        the poisoned share staying in the retain set."""
        assert cell.owner is not None and cell.target is not None
        train = env.splits.train
        share = poison_subset(len(train), cell.owner.share, env.fingerprint, cell.seed)
        owner_share = train.subset(share.nonzero().flatten(), f"owner-share:{cell.owner.share}:{cell.seed}")
        if cell.target == "share":
            # the retain set is the clean rest whatever the poison: taken from the clean split, it keeps one
            # identity (and one paired retrain) for every poisoner
            tag = digest(cell.owner.to_json("share"))
            task = Task(retain=train.subset((~share).nonzero().flatten(), f"retain:{tag}:{cell.seed}"),
                        forget=mixture.subset(share.nonzero().flatten(), f"forget:{tag}:{cell.seed}"), val=env.splits.val)
            return task, owner_share
        outside = (~share).nonzero().flatten()
        count = round(cell.owner.clean_forget * len(train))
        pick = forget.first_of_permutation(len(outside), count, "interplay-clean-forget", env.fingerprint, cell.seed)
        mask = torch.zeros(len(train), dtype=torch.bool)
        mask[outside[pick]] = True
        spec = {**cell.owner.to_json(cell.target), "data": mixture.fingerprint}
        return forget.split(mixture, mask, spec, cell.seed, env.splits.val), owner_share

    def unlearned(self, env: DatasetEnv, cell: Cell, task: Task, original_data: Data | None = None) -> ModelStage:
        """The cell's unlearner on the model standard-trained on ``original_data`` (default: the clean
        training split; the interplay track's poisoned mixture)."""
        original = self.standard(env, env.splits.train if original_data is None else original_data, cell.seed)
        stage = self._unlearn(env, cell, original.load, original.key, task)
        return stage._replace(meta=stage.meta.get("record"))

    def replay(self, env: DatasetEnv, cell: Cell, ensemble: Ensemble, data: Data, forget_masks: torch.Tensor) -> Ensemble:
        """The cell's unlearner run on every member of ``ensemble`` (``Evaluation.unlearn_many``)."""
        if not self._replays:
            raise ContractViolation("a metric that calls ev.unlearn_many must declare `replays = True` (its cache key "
                                    "then holds the unlearner)")
        masks = torch.as_tensor(forget_masks).to(data.device)
        if masks.shape != ensemble.subsets.shape or masks.dtype != torch.bool:
            raise ValueError(f"forget masks must be a {tuple(ensemble.subsets.shape)} bool tensor like the ensemble's subsets")
        models = [self._unlearn(env, cell, lambda k=k: ensemble.model(k), digest([ensemble.key, k]),
                                ensemble.member_task(k, data, masks[k], env.splits.val), ensemble.seeds[k]).model
                  for k in range(len(ensemble))]
        return Ensemble.stack(models, ensemble.subsets, ensemble.seeds, key=digest([ensemble.key, "replay", cell.unlearner.spec(),
                                                                                   tensor_digest(masks.to(torch.uint8))]))

    def _unlearn(self, env: DatasetEnv, cell: Cell, original: Load, okey: str, task: Task,
                 seed: int | None = None) -> ModelStage:
        """The unlearning stage: the cell's unlearner on a copy of ``original()`` (key ``okey``) for ``task``.
        ``seed`` (default: the cell's) is the context's seed: a replay on an ensemble member runs with the
        member's seed, so a method that retrains (``ctx.train``) draws that member's retrain."""
        assert cell.unlearner is not None
        unlearner = cell.unlearner
        try:  # the plugins it composes enter its key; an unknown one fails this cell, as it would when called
            called = [[family, label, self._single(env, "metric" if family == "scorer" else family, *parse_label(label)).spec()]
                      for family, label in unlearner.obj.called()] if self.planner else []  # type: ignore[attr-defined]
        except BaseException as exc:  # the unlearner's own declaration failed: its cells fail, named
            if user_stop(exc):
                raise
            raise StageFailure("unlearn", str(exc) if isinstance(exc, UserError) else
                               escaped(exc, f"unlearner {unlearner.label!r}.called()") or
                               f"unlearner {unlearner.label!r}.called() raised {one_line(exc)}",
                               traceback.format_exc()) from None
        seed = cell.seed if seed is None else seed
        key = digest({**env.base(seed), "stage": "unlearn", "unlearner": unlearner.spec(), "original": okey,
                      "forget": task.forget.fingerprint, **({"calls": called} if called else {})})

        extra: dict[str, Any] = {}

        def produce(start: nn.Module):
            ctx = self.context(env, seed, key)
            given = task
            if not type(unlearner.obj).reads_forget:  # type: ignore[attr-defined]
                empty = task.forget.subset(torch.zeros(0, dtype=torch.int64), "withheld")
                given = Task(task.retain, empty, task.val)
            with self._guard(f"unlearner {unlearner.label!r}", unlearner.obj, env, task=task, original=start,
                             splits=env.splits):
                out = unlearner.obj.unlearn(copy.deepcopy(start), given, ctx)  # type: ignore[attr-defined]
            record = getattr(out, "dememo_record", None)
            if record is not None:
                try:
                    extra["record"] = json.loads(json.dumps(clean_number(record), allow_nan=False))  # ∞ → null
                except (TypeError, ValueError) as exc:
                    raise ContractViolation(f"unlearner {unlearner.label!r} attached a dememo_record that is not "
                                            f"plain JSON: {exc}") from None
            return out

        models, meta, info = self._models_stage(env, key, "unlearn", produce, f"unlearner {unlearner.label!r}",
                                                extra=lambda: extra, source=original)
        return ModelStage(lambda: models()[0], key, info, meta)

    def attacked(self, env: DatasetEnv, cell: Cell, model: Load, model_key: str,
                 task: Task | None) -> AttackStage:
        attack = cell.attack
        if attack.name == "none":
            return AttackStage([(model, model_key)], StageInfo(0.0, True))
        key = digest({**env.base(cell.seed), "stage": "attack", "attack": attack.spec(), "model": model_key})

        def produce(target: nn.Module):
            ctx = self.context(env, cell.seed, key)
            with self._guard(f"attack {attack.label!r}", attack.obj, env, model=target, splits=env.splits, task=task):
                return attack.obj.attack(copy.deepcopy(target), AttackData(env.splits, task), ctx)  # type: ignore[attr-defined]

        models, meta, info = self._models_stage(env, key, "attack", produce, f"attack {attack.label!r}",
                                                source=model)
        count = meta.get("count") or len(models())  # entries written before the count was recorded: load to count
        if count == 1:
            return AttackStage([(lambda: models()[0], key)], info)
        return AttackStage([(lambda i=i: models()[i], digest([key, i])) for i in range(count)], info)

    # -- metrics -----------------------------------------------------------------------------------

    @staticmethod
    def reference_data(env: DatasetEnv, task: Task | None, original: Data | None = None) -> dict[str, Data]:
        """What each reference model is standard-trained on: ``original`` on the clean training split (on
        the interplay track: the poisoned mixture the unlearner starts from), ``clean`` on the clean
        training split, ``retrained`` (unlearning and interplay tracks) on the retain set."""
        refs = {"original": env.splits.train if original is None else original, "clean": env.splits.train}
        if task is not None:
            refs["retrained"] = task.retain
        return refs

    def references(self, env: DatasetEnv, cell: Cell, task: Task | None,
                   original: Data | None = None) -> dict[str, Callable[[], tuple[nn.Module, str]]]:
        def trained_on(data: Data) -> tuple[nn.Module, str]:
            stage = self.standard(env, data, cell.seed)
            return stage.model, stage.key

        return {name: (lambda d=data: trained_on(d)) for name, data in self.reference_data(env, task, original).items()}

    def metric(self, env: DatasetEnv, cell: Cell, metric: Configured, model: Load, model_key: str,
               task: Task | None, train_data: Data | None, history: list | None, metrics: dict[str, Configured],
               state: CellState) -> dict[str, float]:
        """A metric's values on one model of the cell (``model()`` loads it; ``state``: what the cell's metrics
        share)."""
        return self.metric_stage(env, cell, metric, model, model_key, task, train_data, history, metrics, state)[0]

    def metric_stage(self, env: DatasetEnv, cell: Cell, metric: Configured, model: Load, model_key: str,
                     task: Task | None, train_data: Data | None, history: list | None,
                     metrics: dict[str, Configured], state: CellState) -> tuple[dict[str, float], StageInfo]:
        """:meth:`metric` with how its stage ran (seconds of its computation, whether read from the cache)."""
        cls: type[Metric] = type(metric.obj)  # type: ignore[assignment]
        original = train_data if cell.track == "interplay" else None
        refs = self.references(env, cell, task, original)
        needs = needs_of(metric, cell.track)
        missing = [n for n in needs if n not in refs]
        if missing:
            raise StageFailure(f"metric:{metric.name}", f"needs reference {missing[0]!r}, not available on the {cell.track} track", "")
        used = {n: metrics[n].spec() if n in metrics else None for n in cls.uses}
        ref_data = self.reference_data(env, task, original)
        ref_keys = {n: self.train_key(env, ref_data[n], cell.seed) for n in needs}
        reads_model = cls.reads_model
        replays = cls.replays and cell.unlearner is not None
        key = digest({**env.base(cell.seed), "stage": "metric", "metric": metric.spec(),
                      **({"replays": cell.unlearner.spec()} if replays else {}),  # type: ignore[union-attr]
                      "model": model_key if reads_model else None,
                      "refs": ref_keys, "uses": used, "track": cell.track,
                      "forget": task.forget.fingerprint if task else None,
                      "train": train_data.fingerprint if train_data is not None else None,
                      "history": digest(history) if history and reads_model else None})

        def compute(evaluated: nn.Module | None):
            ctx = self.context(env, cell.seed, key)
            evals = state.evals
            if model_key not in evals:
                evals[model_key] = self._evaluation(env, cell, evaluated, model_key, task, train_data, history, metrics,
                                                    refs, state)
            ev = evals[model_key]
            outer, self._replays = self._replays, replays
            try:
                with self._guard(f"metric {metric.name!r}", metric.obj, env, model=ev.model, splits=env.splits, task=task,
                                 train=train_data, owner_share=state.owner_share) as watch:
                    view = ev.view(watch.add)
                    values = metric.obj.compute(view, ctx)  # type: ignore[attr-defined]
                ev.merge(view)
            finally:
                self._replays = outer
            values = self._check_metric(metric, values)
            stored = {k: v.to_json() if isinstance(v, Series) else v for k, v in values.items()}
            return values, None, {"values": clean_number(stored)}

        def decode(meta, payload):
            return {k: Series.from_json(v) if isinstance(v, dict) else (math.nan if v is None else v)
                    for k, v in meta["values"].items()}

        values, _, info = self.memo.stage(key, f"metric:{metric.name}", compute, decode, f"metric {metric.name!r}",
                                          inputs=lambda: None if model_key in state.evals else model())
        return values, info

    def _evaluation(self, env, cell, model, model_key, task, train_data, history, metrics, refs, state) -> Evaluation:
        def reference(name: str) -> nn.Module:
            if name not in refs:
                raise KeyError(f"unknown reference {name!r}; available: {sorted(refs)}")
            model = refs[name]()[0]
            for watch in self.memo.watches:  # shared with every cell of the seed: watched under its own name
                watch.add(f"reference {name!r}", model, rename=True)
            return model

        def other(name: str, on: str) -> dict[str, float]:
            if name not in metrics:
                raise KeyError(f"metric {name!r} is not installed or not in this run")
            if on == "model":
                m, k = model, model_key
            else:
                m, k = refs[on]()
            return self.metric(env, cell, metrics[name], lambda: m, k, task, train_data, history if on == "model" else None,
                               metrics, state)

        replay = (lambda ens, data, masks: self.replay(env, cell, ens, data, masks)) if cell.unlearner is not None else None
        return Evaluation(model=model, splits=env.splits, track=cell.track, task=task, train_data=train_data,
                          history=history, cell=cell.config(), costs=dict(state.costs), owner_share=state.owner_share,
                          references=reference, metric=other, replay=replay)

    @staticmethod
    def _check_metric(metric: Configured, values: Any) -> dict[str, Any]:
        columns = type(metric.obj).columns  # type: ignore[attr-defined]
        if not isinstance(values, dict):
            raise ContractViolation(f"metric {metric.name!r} returned {type(values).__name__}, expected a dict")
        unknown = sorted(set(values) - set(columns))
        if unknown:
            raise ContractViolation(f"metric {metric.name!r} returned undeclared column {unknown[0]!r}")
        out: dict[str, Any] = {}
        for k, v in values.items():
            if columns[k].unit == "series":
                if not isinstance(v, Series):
                    raise ContractViolation(f"metric {metric.name!r} column {k!r} is a series column: return a "
                                            f"dememo.Series, not {type(v).__name__}")
                out[k] = v
                continue
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                raise ContractViolation(f"metric {metric.name!r} column {k!r} is not a number: {v!r}") from None
        return out
