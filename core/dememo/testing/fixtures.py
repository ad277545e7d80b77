"""Tiny data, models and registries for fast plugin tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

import attrs
import torch
from torch import nn

from dememo import plugins
from dememo.budget import Budget
from dememo.context import Context, seeded_generator, standard_training
from dememo.data import Data, Splits, Task
from dememo.ensemble import Ensemble
from dememo.evaluation import Evaluation
from dememo.families import Architecture, Plugin, Unlearner
from dememo.params import build
from dememo.training import Recipe


@contextlib.contextmanager
def isolated_registry(*objects: object) -> Iterator[plugins.Registry]:
    """A registry built from ``objects`` only (no entry points, no process-wide state)."""
    pm = plugins.new_manager()
    for i, obj in enumerate(objects):
        pm.register(obj, name=getattr(obj, "__name__", f"plugin-{i}"))
    yield plugins.collect(pm)


@contextlib.contextmanager
def registered(obj: object, name: str | None = None) -> Iterator[plugins.Registry]:
    """Register ``obj`` with the process-wide plugin manager for the duration of the block."""
    pm = plugins.get_manager()
    plugin_name = pm.register(obj, name=name)
    plugins.invalidate()
    try:
        yield plugins.get_registry()
    finally:
        pm.unregister(name=plugin_name)
        plugins.invalidate()


class TinyMLP(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, hidden: int = 32):
        super().__init__()
        d = input_shape[0] * input_shape[1] * input_shape[2]
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - 0.5) / 0.25)


@attrs.define
class TinyArchitecture(Architecture):
    """A 32-unit MLP for tests."""

    name: ClassVar[str] = "tiny-mlp"
    version: ClassVar[str] = "1"

    def build(self, input_shape, num_classes):
        return TinyMLP(input_shape, num_classes)


def tiny_splits(n_train: int = 120, n_val: int = 40, n_test: int = 60, shape: tuple[int, int, int] = (1, 4, 4),
                num_classes: int = 3, seed: int = 0) -> Splits:
    """Class prototypes plus noise: learnable in a few epochs, not trivially (about 90 % clean accuracy)."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(num_classes, *shape, generator=g)

    def make(n: int, tag: str) -> Data:
        y = torch.arange(n) % num_classes
        x = (0.6 * protos[y] + 0.2 + 0.15 * torch.randn(n, *shape, generator=g)).clamp(0, 1)
        return Data.from_tensors(x, y, num_classes, tag=f"tiny:{tag}:{seed}")

    return Splits(make(n_train, "train"), make(n_val, "val"), make(n_test, "test"))


def tiny_task(splits: Splits, forget_fraction: float = 0.2, seed: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(splits.train), generator=g)
    n = max(1, int(forget_fraction * len(splits.train)))
    return Task(retain=splits.train.subset(order[n:], "retain"), forget=splits.train.subset(order[:n], "forget"), val=splits.val)


def tiny_class_task(splits: Splits, classes: tuple[int, ...] = (0,)) -> Task:
    """A class-level task: every training sample of ``classes`` is forgotten."""
    mask = torch.isin(splits.train.y, torch.tensor(classes, device=splits.train.y.device))
    return Task(retain=splits.train.subset((~mask).nonzero().flatten(), "retain-class"),
                forget=splits.train.subset(mask.nonzero().flatten(), "forget-class"), val=splits.val)


def tiny_context(splits: Splits | None = None, seed: int = 0, budget: Budget | None = Budget("linf", 8 / 255),
                 architecture: Architecture | None = None, recipe: Recipe | None = None) -> Context:
    """A context on ``splits`` like the runner's: ``ctx.scores(name)`` runs the installed scorer on
    ``splits.train`` (cached per context), ``ctx.plugin(family, label)`` builds an installed plugin with its
    default parameters and those in the label."""
    splits = splits or tiny_splits()
    device = splits.train.device
    scores: dict[str, torch.Tensor] = {}

    def scorer(name: str) -> torch.Tensor:
        if name not in scores:
            cls = plugins.get_registry().get("metric", name)
            scores[name] = cls().score(splits.train, ctx.derive(f"scores:{name}")).detach().cpu()  # type: ignore[attr-defined]
        return scores[name]

    def maker(family: str, name: str, params: dict) -> Plugin:
        return build(plugins.get_registry().get(family, name), params, f"$.{name}")

    ctx = Context(
        device=device,
        seed=seed,
        generator=seeded_generator(seed, device),
        recipe=recipe or Recipe(epochs=8, batch_size=32, lr=0.05),
        architecture=architecture or TinyArchitecture(),
        input_shape=splits.shape,
        num_classes=splits.num_classes,
        budget=budget,
        scorer=scorer,
        maker=maker,
    )
    return ctx


def evaluation_for(model: nn.Module, splits: Splits, track: str, task: Task | None = None, seed: int = 0,
                   registry: plugins.Registry | None = None, unlearner: Unlearner | None = None,
                   owner_share: Data | None = None) -> Evaluation:
    """An ``Evaluation`` with references trained by the standard loop and other metrics resolved by name
    from ``registry`` (default parameters), so a metric can be tested outside the runner.
    ``ev.unlearn_many`` replays ``unlearner`` on each ensemble member (default: none, i.e. the members
    are returned as they are, like the ``original`` unlearner). ``owner_share`` is ``ev.owner_share``
    (interplay-track metrics)."""
    refs: dict[str, nn.Module] = {}

    def replay(ensemble: Ensemble, data: Data, forget: torch.Tensor) -> Ensemble:
        if unlearner is None:
            return ensemble
        models = [unlearner.unlearn(ensemble.model(k), ensemble.member_task(k, data, forget[k], splits.val),
                                    tiny_context(splits, seed=ensemble.seeds[k]))
                  for k in range(len(ensemble))]
        return Ensemble.stack(models, ensemble.subsets, ensemble.seeds)

    def reference(name: str) -> nn.Module:
        if name not in refs:
            data = task.retain if name == "retrained" and task is not None else splits.train
            refs[name] = standard_training(tiny_context(splits, seed=seed), data)[0]
        return refs[name]

    def metric(name: str, on: str = "model") -> dict[str, float]:
        reg = registry or plugins.get_registry()
        other = reg.get("metric", name)()
        target = model if on == "model" else reference(on)
        return other.compute(evaluation_for(target, splits, track, task, seed, registry, owner_share=owner_share),
                             tiny_context(splits, seed=seed))

    return Evaluation(model=model, splits=splits, track=track, task=task, train_data=splits.train,
                      history=None, owner_share=owner_share, references=reference, metric=metric, replay=replay)
