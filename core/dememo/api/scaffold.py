"""``dememo-bench new FAMILY NAME``: a complete, installable plugin distribution to start a method from.

What it writes (``dememo-plugin-NAME/``) installs with ``pip install -e .``, passes its own tests and runs
with ``dememo-bench --smoke``: a ``pyproject.toml`` with the ``dememo`` entry point, the plugin class with a
docstring laid out as dememo asks of every method (the paper, the equation, each choice and deviation), a
working *placeholder* implementation (a simple, documented procedure that the author replaces with the
paper's), tests built on the contract kit (:mod:`dememo.testing`) plus a behaviour test of the
placeholder, and a README with the steps from here to a leaderboard entry. Dataset and architecture
plugins also get ``smoke.toml``, a one-seed suite that uses them.

The placeholders are there so that every step works before the method does; a distribution that still
holds one says so in its docstring (``PLACEHOLDER``), which is the first thing to replace.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

import attrs

from dememo.errors import UserError

FAMILIES = ("poisoner", "unlearner", "attack", "metric", "dataset", "architecture")
#: a plugin name: ASCII kebab-case, as the board requires (``dememo.board.bundle.PLUGIN_NAME``)
NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
#: the flag that names a plugin of each family in a run (datasets and architectures are named by a suite)
RUN_FLAG = {"poisoner": "--poisoner", "unlearner": "--unlearner", "attack": "--attack", "metric": "--metric"}


@attrs.frozen
class Scaffold:
    """What ``new`` wrote: the distribution's directory, its files (relative paths), and the commands that
    take it from here (install, test, smoke run)."""

    family: str
    name: str
    root: Path
    files: tuple[str, ...]
    distribution: str
    module: str

    @property
    def smoke(self) -> str:
        """The ``dememo-bench`` arguments of its smoke run."""
        return smoke_args(self.family, self.name)

    def next_steps(self) -> str:
        return "\n".join([
            f"wrote {self.root} ({', '.join(self.files)})",
            "next:",
            f"  cd {self.root} && pip install -e . && python -m pytest     # install it, run its tests",
            f"  dememo-bench {self.smoke}     # its first row beside the references, in under a minute",
            f"  then replace the PLACEHOLDER in src/{self.module}/__init__.py with the paper's method (README.md)",
        ])


def smoke_args(family: str, name: str) -> str:
    """The ``dememo-bench`` arguments of a new plugin's smoke run (a dataset or architecture: its smoke suite)."""
    if family in RUN_FLAG:
        return f"--smoke {RUN_FLAG[family]} {name}"
    return "--smoke --suite smoke.toml"


def _words(name: str) -> list[str]:
    return name.split("-")


def names(family: str, name: str) -> dict[str, str]:
    """The names a plugin ``name`` of ``family`` gets: distribution, module, class, column."""
    if family not in FAMILIES:
        raise UserError(f"dememo-bench new: unknown family {family!r}; families: {', '.join(FAMILIES)}")
    if not NAME.fullmatch(name) or len(name) > 40:
        raise UserError(f"dememo-bench new: {name!r} is not a plugin name; use lower-case kebab-case ASCII that starts "
                        "with a letter, at most 40 characters (e.g. my-method)")
    words = _words(name)
    return {
        "family": family,
        "name": name,
        "dist": f"dememo-plugin-{name}",
        "module": "dememo_plugin_" + "_".join(words),
        "cls": "".join(w.capitalize() for w in words) + ("Data" if family == "dataset" else ""),
        "column": "_".join(words) + "_conf",
        "hook": f"register_{family}s" if family != "architecture" else "register_architectures",
        "test": "test_" + "_".join(words),
    }


def _installed(family: str, name: str) -> str | None:
    """The distribution an installed plugin of that family and name comes from, if one is installed."""
    from dememo import plugins

    info = plugins.get_registry().classes.get(family, {}).get(name)
    return None if info is None else info.distribution


def _entry_point_taken(entry: str) -> str | None:
    """The distribution that has an entry point named ``entry`` in group ``dememo``, if one is installed."""
    from importlib import metadata

    from dememo.plugins import GROUP

    for ep in metadata.entry_points(group=GROUP):
        if ep.name == entry:
            return ep.dist.name if ep.dist is not None else "an unknown distribution"
    return None


def new(family: str, name: str, directory: Path | str = ".") -> Scaffold:
    """Write the distribution of a new ``family`` plugin ``name`` into ``directory/dememo-plugin-NAME`` (which
    must not exist or be empty); a UserError names a bad family or name, a name an installed plugin of the
    family has, or a directory that is in the way."""
    n = names(family, name)
    taken = _installed(family, name)
    if taken is not None:
        raise UserError(f"dememo-bench new: {family} {name!r} is installed already (from {taken}); choose another name, "
                        "since two plugins of a family cannot share one")
    taken = _entry_point_taken(n["dist"])
    if taken is not None:
        raise UserError(f"dememo-bench new: {taken} is installed and has an entry point named {n['dist']!r}; choose "
                        "another name")
    root = Path(directory) / n["dist"]
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(f"dememo-bench new: {root} exists and is not an empty directory; give another --dir or remove it")
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README_HEAD + README[family] + README_TAIL,
        ".gitignore": GITIGNORE,
        f"src/{n['module']}/__init__.py": MODULES[family],
        f"tests/{n['test']}.py": TESTS[family],
    }
    if family in ("dataset", "architecture"):
        files["smoke.toml"] = SMOKE_SUITES[family]
    n["smoke"] = smoke_args(family, name)
    try:
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Template(text).substitute(n), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"dememo-bench new: cannot write {root}: {exc.strerror or exc}") from None
    return Scaffold(family, name, root, tuple(files), n["dist"], n["module"])


# -- the files ---------------------------------------------------------------------------------------
# string.Template: ${name} (kebab-case), ${module}, ${cls}, ${dist}, ${family}, ${column}, ${hook}, ${smoke}

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "${dist}"
version = "0.1.0"
description = "dememo ${family} plugin ${name}"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["dememo"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# How dememo finds the plugin: entry-point group "dememo", value = the module holding the @dememo.hookimpl
# function. DEMEMO_LOAD_PLUGINS / DEMEMO_BLOCK_PLUGINS refer to it by the name on the left, which is unique
# across every installed distribution (all families share one namespace of entry-point names).
[project.entry-points.dememo]
${dist} = "${module}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

GITIGNORE = '''__pycache__/
*.egg-info/
build/
dist/
.pytest_cache/
dememo-results/
'''

DOC_HEAD = '''"""``${name}``: PLACEHOLDER: name the method, its authors and paper here ("Title", venue year, arXiv id).

Replace this docstring and the placeholder below with the paper's method. dememo asks every method's
docstring for three things (the review reads them; CONTRIBUTING.md has the details):

Paper: the method's name, authors, title, venue and year, and the authors' released code (repository and
file), if any: tests/ then holds a *reference check*, a value computed from that code's formula and
compared with this plugin's.

Equation: the equation (and its number in the paper) that the code implements, each symbol tied to a
parameter of the class below.
'''

MODULES = {
    "poisoner": DOC_HEAD + '''
The placeholder is sample-wise uniform noise in the ℓ∞ ball: x' = clip(x + δ, 0, 1), δ ~ U[−s·ε, s·ε] per
pixel, drawn from ``ctx.generator`` (ε = ``ctx.budget.eps``, s = ``scale``). It hides almost nothing: a
baseline to compare a real poison with, and a shape to follow.

Choices and deviations: PLACEHOLDER: each place where the paper is silent or this code differs from it
(schedule, number of steps, surrogate model), and why.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

import dememo


@attrs.define
class ${cls}(dememo.Poisoner):
    """PLACEHOLDER one-line summary (shown by dememo-bench --list): uniform noise in the ℓ∞ ball."""

    name: ClassVar[str] = "${name}"
    version: ClassVar[str] = "1"  # bump whenever a change changes the output: it is in every cache key
    norm: ClassVar[str] = "linf"  # the threat model; the harness gives its radius as ctx.budget.eps
    scale: float = 1.0  # s: the noise's half-width as a fraction of ε

    def __attrs_post_init__(self) -> None:
        if not 0 < self.scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {self.scale}")

    def poison(self, data: dememo.Data, ctx: dememo.Context) -> torch.Tensor:
        """The poisoned images: same shape as data.x, in [0, 1], within ctx.budget (the harness checks)."""
        g = ctx.generator
        eps = self.scale * ctx.budget.eps
        delta = (torch.rand(data.x.shape, generator=g, device=g.device) * 2 - 1) * eps
        return (data.x + delta.to(data.x.device)).clamp(0, 1)


@dememo.hookimpl
def ${hook}(register):
    register(${cls})
''',
    "unlearner": DOC_HEAD + '''
The placeholder relabels every forget sample with a random *wrong* label, drawn once from
``ctx.generator``, and fine-tunes on retain ∪ relabelled forget for ``epochs`` epochs at a constant ``lr``
with the suite's optimiser (``ctx.fit``): the "Unlearning" baseline of Graves et al., "Amnesiac Machine
Learning" (AAAI 2021). It works on a random forget set and on a whole class (``forget_kinds``); a method of
one kind declares only that one, and its tests use that kind's task (``tiny_task``, ``tiny_class_task``).

Choices and deviations: PLACEHOLDER: each place where the paper is silent or this code differs from it, and
why.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

import dememo
from dememo.hashing import tensor_digest


def wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """For each label, one of the other num_classes − 1 classes, uniformly."""
    shift = torch.randint(1, num_classes, y.shape, generator=generator, device=generator.device)
    return (y + shift.to(y.device)) % num_classes


@attrs.define
class ${cls}(dememo.Unlearner):
    """PLACEHOLDER one-line summary (shown by dememo-bench --list): fine-tune on retain ∪ wrongly relabelled forget."""

    name: ClassVar[str] = "${name}"
    version: ClassVar[str] = "1"  # bump whenever a change changes the output: it is in every cache key
    forget_kinds: ClassVar[tuple[str, ...]] = ("random", "class")
    # the values `dememo-bench tune` tries (the defaults below are the starting point)
    search_space: ClassVar[dict[str, tuple]] = {"lr": (0.003, 0.01, 0.03), "epochs": (1, 2, 5)}
    lr: float = 0.01
    epochs: int = 2

    def unlearn(self, model, task: dememo.Task, ctx: dememo.Context):
        """The unlearned model (the harness passes a copy: modify it in place and return it)."""
        forget, retain = task.forget, task.retain
        wrong = wrong_labels(forget.y, forget.num_classes, ctx.generator)
        mixed = dememo.Data(
            x=torch.cat([retain.x, forget.x]),
            y=torch.cat([retain.y, wrong]),
            num_classes=forget.num_classes,
            # unique for this content (the drawn labels included): ctx.fit does not cache by it, ctx.train would
            fingerprint=f"{retain.fingerprint}+relabelled:{forget.fingerprint}:{tensor_digest(wrong)[:16]}",
            index=torch.cat([retain.index, forget.index]),  # positions in the training split
        )
        ctx.fit(model, mixed, epochs=self.epochs, lr=self.lr, schedule="constant", desc="${name}")
        return model


@dememo.hookimpl
def ${hook}(register):
    register(${cls})
''',
    "attack": DOC_HEAD + '''
The placeholder is a model-stage attack: Gaussian noise on every floating-point weight, θ' = θ + σ·z with
z ~ N(0, I) drawn from ``ctx.generator``; ``draws`` independent noisy models (metrics average over them).
Its ``stages`` are ``("model",)``; a learner-side attack (replacing standard training on released data)
declares ``("train",)`` and implements ``train(data, ctx)`` instead (see dememo.Attack).

Choices and deviations: PLACEHOLDER: each place where the paper is silent or this code differs from it, and
why.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

import dememo


@attrs.define
class ${cls}(dememo.Attack):
    """PLACEHOLDER one-line summary (shown by dememo-bench --list): Gaussian noise on the weights."""

    name: ClassVar[str] = "${name}"
    version: ClassVar[str] = "1"  # bump whenever a change changes the output: it is in every cache key
    stages: ClassVar[tuple[str, ...]] = ("model",)
    sigma: float = 0.01
    draws: int = 1

    def __attrs_post_init__(self) -> None:
        if self.sigma < 0 or self.draws < 1:
            raise ValueError(f"sigma must be ≥ 0 and draws ≥ 1, got sigma={self.sigma}, draws={self.draws}")

    def attack(self, model, data: dememo.AttackData, ctx: dememo.Context):
        """The attacked model(s): the harness passes a copy of the model under attack."""
        import copy

        g = ctx.generator
        out = []
        for _ in range(self.draws):
            noisy = copy.deepcopy(model)
            with torch.no_grad():
                for p in noisy.parameters():
                    if p.is_floating_point():
                        p.add_(self.sigma * torch.randn(p.shape, generator=g, device=g.device).to(p.device))
            out.append(noisy)
        return out[0] if self.draws == 1 else out


@dememo.hookimpl
def ${hook}(register):
    register(${cls})
''',
    "metric": DOC_HEAD + '''
The placeholder reports ``${column}``: the model's mean softmax probability of the true label on the
forget set, (1/|D_f|) Σ p_θ(y_i | x_i), read against the retrained model (closest is best). Its column is
declared in ``columns`` with its unit and direction; dememo's CONTRIBUTING.md lists the units and the ranges
``dememo-bench verify`` checks. A column key is unique on its track across installed metrics (prefix it with
the metric's name, as here). A metric that needs one random model per seed, the same in every row (an
incompetent teacher, a random baseline), takes ``ctx.seeded_model("${name}:teacher")``.

Choices and deviations: PLACEHOLDER: each place where the paper is silent or this code differs from it, and
why.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

import dememo


@attrs.define
class ${cls}(dememo.Metric):
    """PLACEHOLDER one-line summary (shown by dememo-bench --list): mean true-label confidence on the forget set."""

    name: ClassVar[str] = "${name}"
    version: ClassVar[str] = "1"  # bump whenever a change changes the output: it is in every cache key
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    columns: ClassVar[dict[str, dememo.Column]] = {
        "${column}": dememo.Column(
            "${name} conf", "match", "mean softmax probability of the true label on the forget set", "fraction",
            reference="retrain"),
    }

    def compute(self, ev: dememo.Evaluation, ctx: dememo.Context) -> dict[str, float]:
        forget = ev.task.forget
        probs = ev.probs(ev.model, forget)
        true = probs[torch.arange(len(forget), device=probs.device), forget.y.to(probs.device)]
        return {"${column}": float(true.mean())}


@dememo.hookimpl
def ${hook}(register):
    register(${cls})
''',
    "dataset": DOC_HEAD + '''
The placeholder generates its images: ``classes`` random prototype patterns of ``channels``×``size``×``size``
pixels (seeded by ``seed``), each image 0.5·prototype + 0.25 + N(0, ``noise``²) clipped to [0, 1], the
classes in turn; ``n_train``/``n_val``/``n_test`` images per split. A dataset that reads files takes them
from ``data_dir`` (the --data-dir of a run) and raises dememo.DatasetError naming what is missing and what
to do; it downloads only when ``download`` is true (the user's explicit --download).

Choices and deviations: PLACEHOLDER: the source of the data, its licence, any preprocessing and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import attrs
import torch

import dememo


@attrs.define
class ${cls}(dememo.DatasetSource):
    """PLACEHOLDER one-line summary (shown by dememo-bench --list): generated prototype-plus-noise images."""

    name: ClassVar[str] = "${name}"
    version: ClassVar[str] = "1"  # bump whenever a change changes the data: it is in every cache key
    budgets: ClassVar[dict[str, float]] = {"linf": 8 / 255, "l2": 0.5, "l0": 1}  # default poison radii
    classes: int = 4
    size: int = 8
    channels: int = 1
    noise: float = 0.2
    n_train: int = 800
    n_val: int = 100
    n_test: int = 400
    seed: int = 0

    def load(self, data_dir: Path, download: bool) -> dememo.Splits:
        """The train/val/test splits, on the CPU, images in [0, 1]."""
        g = torch.Generator().manual_seed(self.seed)
        shape = (self.channels, self.size, self.size)
        protos = torch.rand(self.classes, *shape, generator=g)

        def split(n: int, tag: str) -> dememo.Data:
            y = torch.arange(n) % self.classes
            x = (0.5 * protos[y] + 0.25 + self.noise * torch.randn(n, *shape, generator=g)).clamp(0, 1)
            return dememo.Data.from_tensors(x, y, self.classes, tag=f"${name}:{tag}:{self.params()}")

        return dememo.Splits(split(self.n_train, "train"), split(self.n_val, "val"), split(self.n_test, "test"))


@dememo.hookimpl
def ${hook}(register):
    register(${cls})
''',
    "architecture": DOC_HEAD + '''
The placeholder is a one-hidden-layer perceptron: flatten, Linear(C·H·W → ``hidden``), ReLU,
Linear(``hidden`` → classes), torch's default initialisation (drawn from torch's seeded RNG, as the harness
expects). An architecture that initialises from data (whitening, for example) overrides ``initialize``.

Choices and deviations: PLACEHOLDER: each place where the paper is silent or this code differs from it, and
why.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
from torch import nn

import dememo


@attrs.define
class ${cls}(dememo.Architecture):
    """PLACEHOLDER one-line summary (shown by dememo-bench --list): a one-hidden-layer perceptron."""

    name: ClassVar[str] = "${name}"
    version: ClassVar[str] = "1"  # bump whenever a change changes the model: it is in every cache key
    hidden: int = 64

    def build(self, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        c, h, w = input_shape
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, self.hidden), nn.ReLU(), nn.Linear(self.hidden, num_classes))


@dememo.hookimpl
def ${hook}(register):
    register(${cls})
''',
}

TEST_HEAD = '''"""Tests of ${dist}: dememo's contract for ${family}s (dememo.testing), then the method's own claims.

Replace the placeholder's behaviour test with the paper's claim on data (direction and rough size), and add
a reference check against the authors' released code where there is one.
"""

from __future__ import annotations

import copy
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

try:
    import ${module}
except ModuleNotFoundError:  # a checkout without `pip install -e .`: import from src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import ${module}

from ${module} import ${cls}
from dememo.testing import isolated_registry, tiny_class_task, tiny_context, tiny_splits, tiny_task

#: the contract's registration test needs the entry point (`pip install -e .`)
INSTALLED = any(ep.value == "${module}" for ep in metadata.entry_points(group="dememo"))


def test_the_hook_registers_the_plugin():
    with isolated_registry(${module}) as registry:
        assert registry.get("${family}", "${name}") is ${cls}
        assert registry.failures == []
'''

TESTS = {
    "poisoner": TEST_HEAD + '''

from dememo.testing import PoisonerContract  # noqa: E402


class TestContract(PoisonerContract):
    """Registration, parameters, the budget, determinism under a seed, no mutation of the clean data."""

    plugin_class = ${cls}
    params = {"scale": 0.5}
    check_entry_point = INSTALLED


@pytest.mark.parametrize("seed", range(3))
def test_placeholder_noise_fills_the_linf_ball_uniformly(seed):
    splits = tiny_splits(seed=seed)
    ctx = tiny_context(splits, seed=seed)  # budget: ℓ∞, 8/255
    clean = splits.train.x.clone()
    out = ${cls}().poison(splits.train, ctx)
    delta = (out - clean).abs()
    eps = ctx.budget.eps
    inside = (clean > eps) & (clean < 1 - eps)  # pixels the clip cannot touch
    assert float(delta.max()) <= eps + 1e-6
    assert 0.45 * eps < float(delta[inside].mean()) < 0.55 * eps  # |U[-ε, ε]| has mean ε/2
''',
    "unlearner": TEST_HEAD + '''

from dememo.testing import UnlearnerContract  # noqa: E402


class TestContractRandom(UnlearnerContract):
    """Registration, parameters, determinism, no mutation: on a random forget set (tiny_task)."""

    plugin_class = ${cls}
    params = {"epochs": 3, "lr": 0.02}
    forget_kind = "random"
    check_entry_point = INSTALLED


class TestContractClass(UnlearnerContract):
    """The same on a class forget set (tiny_class_task: every sample of class 0)."""

    plugin_class = ${cls}
    params = {"epochs": 3, "lr": 0.02}
    forget_kind = "class"
    check_entry_point = INSTALLED


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", ["random", "class"])
def test_placeholder_lowers_forget_accuracy_more_than_test_accuracy(seed, kind):
    """Fine-tuning on wrong labels removes what the model knew of the forget set (tiny data has 4 steps
    an epoch, hence 30 epochs). Measured over seeds 0-14 (random): the forget accuracy falls by 0.42-0.79,
    the test accuracy by 0.03-0.33."""
    splits = tiny_splits(seed=seed)
    task = tiny_task(splits, seed=seed) if kind == "random" else tiny_class_task(splits)
    ctx = tiny_context(splits, seed=seed, budget=None)
    original = ctx.train(splits.train)
    unlearned = ${cls}(epochs=30, lr=0.05).unlearn(copy.deepcopy(original), task, tiny_context(splits, seed=seed, budget=None))
    forget_drop = ctx.accuracy(original, task.forget) - ctx.accuracy(unlearned, task.forget)
    test_drop = ctx.accuracy(original, splits.test) - ctx.accuracy(unlearned, splits.test)
    assert forget_drop >= 0.25 and forget_drop >= test_drop + 0.15
''',
    "attack": TEST_HEAD + '''

from dememo.testing import AttackContract  # noqa: E402


class TestContract(AttackContract):
    """Registration, parameters, determinism, the model's architecture kept, the input model untouched."""

    plugin_class = ${cls}
    params = {"sigma": 0.05, "draws": 2}
    check_entry_point = INSTALLED


@pytest.mark.parametrize("sigma", [0.0, 0.01, 0.1])
def test_placeholder_moves_the_weights_by_sigma_times_root_d(sigma):
    from dememo import AttackData

    splits = tiny_splits()
    ctx = tiny_context(splits, budget=None)
    model = ctx.train(splits.train)
    out = ${cls}(sigma=sigma).attack(copy.deepcopy(model), AttackData(splits, tiny_task(splits)), ctx)
    moved = torch.cat([(a - b).detach().flatten() for a, b in zip(out.parameters(), model.parameters())])
    expected = sigma * len(moved) ** 0.5  # ‖σz‖ ≈ σ√d
    assert abs(float(moved.norm()) - expected) <= 0.1 * expected + 1e-9
''',
    "metric": TEST_HEAD + '''

from dememo.testing import MetricContract, evaluation_for  # noqa: E402


class TestContract(MetricContract):
    """Registration, parameters, exactly the declared columns, determinism, documented columns."""

    plugin_class = ${cls}
    check_entry_point = INSTALLED


@pytest.mark.parametrize("seed", range(3))
def test_placeholder_is_higher_for_a_model_trained_on_the_forget_set(seed):
    splits = tiny_splits(seed=seed)
    task = tiny_task(splits, seed=seed)
    ctx = tiny_context(splits, seed=seed, budget=None)
    trained, retrained = ctx.train(splits.train), ctx.train(task.retain)
    value = lambda model: ${cls}().compute(evaluation_for(model, splits, "unlearning", task, seed), ctx)["${column}"]  # noqa: E731
    assert 0 <= value(retrained) < value(trained) <= 1
''',
    "dataset": TEST_HEAD + '''

from dememo.testing import DatasetContract  # noqa: E402


class TestContract(DatasetContract):
    """Registration, parameters, well-formed splits (shapes, [0, 1], labels), the same data on every load."""

    plugin_class = ${cls}
    check_entry_point = INSTALLED


def test_placeholder_is_balanced_and_learnable(tmp_path):
    splits = ${cls}().load(tmp_path, False)
    counts = torch.bincount(splits.train.y, minlength=splits.num_classes)
    assert int(counts.max() - counts.min()) <= 1
    ctx = tiny_context(splits, budget=None)
    acc = ctx.accuracy(ctx.train(splits.train), splits.test)
    assert acc > 0.6, f"test accuracy {acc:.2f}: the classes should be learnable"
''',
    "architecture": TEST_HEAD + '''

from dememo.testing import ArchitectureContract  # noqa: E402


class TestContract(ArchitectureContract):
    """Registration, parameters, logits of the right shape, seeded weights, trains on tiny data."""

    plugin_class = ${cls}
    params = {"hidden": 32}
    check_entry_point = INSTALLED


def test_placeholder_has_the_parameters_of_a_one_hidden_layer_perceptron():
    model = ${cls}(hidden=16).build((3, 8, 8), 10)
    assert sum(p.numel() for p in model.parameters()) == (3 * 8 * 8 + 1) * 16 + (16 + 1) * 10
''',
}

#: what a dataset's and an architecture's smoke suites share: forget sets, interplay, cheap many-model metrics
SMOKE_TAIL = '''
[[forget]]
kind = "random"
fraction = 0.1

[[forget]]
kind = "class"
classes = [0]

[interplay]
targets = ["share"]
poisoners = ["none"]

[params.metric.u-lira]
shadows = 6
[params.metric.forget-quality]
models = 4
[params.metric.memorization]
models = 16

[references]
poisoner = ["none"]
unlearner = ["original", "retrain"]
attack = ["none"]
'''

SMOKE_SUITES = {
    "dataset": '''# `dememo-bench --smoke --suite smoke.toml`: one seed of ${name} on the MLP, every track, the reference
# rows of each family (what --smoke adds), in seconds. A leaderboard suite on ${name} sets more epochs and
# seeds, and its [grid] and [params] as dememo's shipped suites do (dememo-bench suite export quick DIR).
name = "${name}-smoke"
description = "One seed of ${name} on the MLP, every track: a quick check of the dataset plugin"
seeds = 1
tracks = ["unlearnability", "unlearning", "interplay"]

[[datasets]]
name = "${name}"
architecture = "mlp"
recipe = { epochs = 20, batch_size = 128, lr = 0.05, momentum = 0.9, weight_decay = 5e-4, schedule = "onecycle" }
''' + SMOKE_TAIL,
    "architecture": '''# `dememo-bench --smoke --suite smoke.toml`: one seed of scikit-learn digits on ${name}, every track, the
# reference rows of each family (what --smoke adds), in seconds. A leaderboard suite with ${name} sets its
# recipe and seeds as dememo's shipped suites do (dememo-bench suite export quick DIR).
name = "${name}-smoke"
description = "One seed of digits on ${name}, every track: a quick check of the architecture plugin"
seeds = 1
tracks = ["unlearnability", "unlearning", "interplay"]

[[datasets]]
name = "digits"
architecture = "${name}"
recipe = { epochs = 30, batch_size = 128, lr = 0.05, momentum = 0.9, weight_decay = 5e-4, schedule = "onecycle" }
''' + SMOKE_TAIL,
}

README_HEAD = '''# ${dist}

A dememo ${family} plugin: `${name}`. PLACEHOLDER: one paragraph on the method and its paper.

Written by `dememo-bench new ${family} ${name}`; the code in `src/${module}/__init__.py` is a working
placeholder to replace with the paper's method (its docstring says what dememo asks for: the paper, the
equation, each choice and deviation).

## From here to a leaderboard entry

```bash
pip install -e .                      # dememo finds the plugin through its entry point
python -m pytest                      # the contract kit and the method's own tests
dememo-bench ${smoke}     # its first row beside the reference rows, in under a minute
```
'''

README = {
    "poisoner": '''
A poisoner's rows are on the unlearnability track (test accuracy of a model trained on the poisoned data,
lower = a stronger poison) and the interplay track. Run the leaderboard suite narrowed to it:

```bash
dememo-bench --all --poisoner ${name} --seeds 1          # quick, one seed: minutes
```
''',
    "unlearner": '''
An unlearner's rows are on the unlearning track (one table per forget set; closest to `retrain` is best)
and the interplay track. Choose its hyper-parameters by the suite's protocol, then run:

```bash
dememo-bench tune --unlearner ${name}          # writes its tuning file; later runs use it ("tuned")
dememo-bench --all --unlearner ${name} --seeds 1
```
''',
    "attack": '''
An attack's rows are every method under it (`method @${name}`), beside the same methods unattacked. Run
the suite narrowed to it:

```bash
dememo-bench --all --attack ${name} --seeds 1
```
''',
    "metric": '''
A metric adds its column(s) to every row of the tracks it declares. Its submission is that column on
every row of the suite (owned as a column; the rows stay their providers'): run the suite unnarrowed
(`--all`, or `--metric ${name}` to compute only this metric), then submit.
''',
    "dataset": '''
A dataset plugin is named by a suite: `smoke.toml` is a one-seed suite on it. A leaderboard on it is a
suite of its own (its tables are this dataset's); copy a shipped suite with
`dememo-bench suite export quick DIR` and put `${name}` in its `[[datasets]]`.
''',
    "architecture": '''
An architecture is named by a suite: `smoke.toml` runs digits on it. A leaderboard with it is a suite of
its own; copy a shipped suite with `dememo-bench suite export quick DIR` and set `architecture = "${name}"`.
''',
}

README_TAIL = '''
## Submitting

```bash
dememo-bench submit --results dememo-results/quick --plugin ${dist} --name "${name}" --out ${name}.json
dememo-bench verify ${name}.json --rerun 2     # what the maintainers run: checks, then re-runs 2 cells
```

dememo's CONTRIBUTING.md walks through each step, the contract kit and what a reference check is.
'''
