"""The ``Context``: how a plugin reaches the harness (binding API).

A fresh context is made for every stage, with its generator seeded from the stage's cache key, so a
stage's output depends only on its inputs and not on the order in which cells run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import torch
from torch import nn

from dememo import training
from dememo.budget import Budget
from dememo.data import Data
from dememo.hashing import derive_seed
from dememo.params import parse_label
from dememo.progress import Progress
from dememo.training import History, Recipe

if TYPE_CHECKING:  # annotations only: families imports this module's Context the same way
    from dememo.ensemble import Ensemble
    from dememo.families import Architecture, Plugin

T = TypeVar("T")


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed % (2**63))
    return g


@attrs.define(eq=False)
class Context:
    """Everything a plugin may use from the harness.

    - ``device``: where data and models live; ``generator``: seeded torch generator on that device;
      ``seed``: the cell's seed (for plugins that need an integer, e.g. scikit-learn).
    - ``budget``: the poison threat model (poisoners only), ``recipe``: the suite's training recipe.
    - ``new_model(data=None)``: a fresh model of the suite's architecture, initialised from ``generator`` (with
      ``data``, the architecture's data-dependent initialisation too); ``seeded_model(purpose)``: one drawn
      from (seed, purpose) only, the same in every row of this seed (a random model a metric shares).
    - ``fit(model, data, ...)``: the standard loop (see ``dememo.training.fit``) with this context's
      recipe and generator; ``train(data)``: a new model fitted with the recipe, cached and shared
      (this is how ``original`` and ``retrain`` models are computed once).
    - ``predict(model, x)``, ``accuracy(model, data)``; ``progress(iterable, desc)``; ``log``.
    - ``scores(name)``: memorization scores of the training split; ``plugin(family, label)``: another
      installed plugin (for methods that compose others, e.g. RUM).
    - ``train_many(data, subsets, seeds)``: many models at once (a vectorized ``dememo.ensemble.Ensemble``),
      member k = standard training on ``subsets[k]`` with seed ``seeds[k]``; cached and shared.
    """

    device: torch.device
    seed: int
    generator: torch.Generator
    recipe: Recipe
    architecture: Architecture
    input_shape: tuple[int, int, int]
    num_classes: int
    budget: Budget | None = None
    log: logging.Logger = attrs.field(factory=lambda: logging.getLogger("dememo"))
    reporter: Progress = attrs.field(factory=lambda: Progress(show=False))
    trainer: Callable[[Data], tuple[nn.Module, History]] | None = None
    scorer: Callable[[str], torch.Tensor] | None = None
    maker: Callable[[str, str, dict[str, Any]], Plugin] | None = None
    ensembler: Callable[[Data, torch.Tensor, tuple[int, ...]], Ensemble] | None = None

    def new_model(self, data: Data | None = None) -> nn.Module:
        """A freshly initialised model; each call draws a new init from ``generator``. With ``data`` (the
        data it will be trained on) the architecture's data-dependent initialisation runs too
        (``Architecture.initialize``, e.g. whitening the first convolution from training patches)."""
        init_seed = int(torch.randint(0, 2**62, (1,), generator=self.generator, device=self.device))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = self.architecture.build(self.input_shape, self.num_classes)
        model = training.place(model, self.device)
        if data is not None:
            with torch.no_grad():
                self.architecture.initialize(model, data)
        return model

    def seeded_model(self, purpose: str, data: Data | None = None) -> nn.Module:
        """A freshly initialised model drawn from (seed, ``purpose``) alone (and ``data``, for an architecture
        that initialises from data): the same weights in every cell of this seed on this dataset, whatever row
        asks, and different for another seed or purpose. For a random
        model a measurement shares across rows (ZRF's incompetent teacher, a random-init baseline); name the
        purpose after the plugin (``"zrf:teacher"``). ``new_model()`` instead draws from the cell's own
        generator (another model in every row)."""
        return self.derive(f"seeded-model:{purpose}").new_model(data)

    def fit(self, model: nn.Module, data: Data, **overrides: Any) -> History:
        """Train ``model`` in place with the suite's recipe; keywords override it (see ``training.fit``)."""
        return training.fit(
            model, data, recipe=self.recipe, generator=self.generator, progress=self.progress, **overrides
        )

    def train(self, data: Data) -> nn.Module:
        """A new model trained on ``data`` with the suite's recipe; cached by data fingerprint and seed."""
        if self.trainer is None:
            return standard_training(self, data)[0]
        return self.trainer(data)[0]

    def train_many(self, data: Data, subsets: torch.Tensor, seeds: Sequence[int] | None = None) -> Ensemble:
        """``len(subsets)`` models trained together (``dememo.ensemble.fit_many``): member ``k`` is standard
        training on the samples of ``data`` marked in ``subsets[k]`` (a K×N bool mask) with seed
        ``seeds[k]`` (default: distinct seeds derived from this context's seed). Cached by the harness
        per (data, subsets, seeds), so every cell that asks for the same ensemble shares it."""
        if seeds is None:
            seeds = [derive_seed(self.seed, "ensemble-member", k) % (2**62) for k in range(len(subsets))]
        seeds = tuple(int(s) for s in seeds)
        if self.ensembler is None:
            from dememo.ensemble import fit_many

            return fit_many(self, data, subsets, seeds)
        return self.ensembler(data, subsets, seeds)

    def scores(self, name: str) -> torch.Tensor:
        """Per-sample memorization scores of the dataset's *training split* from scorer plugin ``name``
        (higher = more memorized; computed once per dataset and seed), indexed by ``Data.index``:
        ``ctx.scores("confidence")[task.forget.index]``. List it in the class's ``called()``."""
        if self.scorer is None:
            raise RuntimeError("this context cannot compute memorization scores (no harness attached)")
        return self.scorer(name)

    def plugin(self, family: str, label: str) -> Plugin:
        """Another installed plugin, e.g. ``ctx.plugin("unlearner", "neggrad-plus(alpha=0.97)")``: the
        suite's parameters for it on this dataset, overridden by those written in the label. Declare the
        plugin in the calling class's ``called()``, so its parameters enter the cache key."""
        if self.maker is None:
            raise RuntimeError("this context cannot build other plugins (no harness attached)")
        name, params = parse_label(label)
        return self.maker(family, name, params)

    def predict(self, model: nn.Module, x: torch.Tensor | Data) -> torch.Tensor:
        return training.predict(model, x.x if isinstance(x, Data) else x)

    def accuracy(self, model: nn.Module, data: Data) -> float:
        return training.accuracy(model, data)

    def progress(self, iterable: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
        return self.reporter.inner(iterable, desc, total)

    def derive(self, purpose: str) -> Context:
        """A copy with a generator seeded for a named sub-task (independent of draws made so far)."""
        return attrs.evolve(self, generator=seeded_generator(derive_seed(self.seed, purpose), self.device))

    def for_training_on(self, data: Data) -> Context:
        """The context standard training on ``data`` runs in: a run started from it draws the same initial
        weights (and, on data of the same size, the same batch order) as ``standard_training(ctx, data)``,
        so a variant of standard training (a learner-side attack) is paired with it."""
        return self.derive(f"standard-training:{data.fingerprint}")


def standard_training(ctx: Context, data: Data, eval_data: Data | None = None) -> tuple[nn.Module, History]:
    """Fit a new model on ``data`` with ``ctx.recipe``; seeded only by (seed, data), never by the caller."""
    local = ctx.for_training_on(data)
    model = local.new_model(data)
    history = local.fit(model, data, eval_data=eval_data, desc="train")
    return model, history
