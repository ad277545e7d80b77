"""Plugins that misbehave in the ways a battery of hostile tests found, and the scenario that runs them.

Each class below does one thing a plugin must not: modify what it reads in place (the evaluated model, a
reference model, the memoised predictions, the forget set), leave torch's global state changed, change its
own parameters, end the process (``sys.exit``), raise ``KeyboardInterrupt`` or the harness's own
``UserError``/``DatasetError``. :func:`misbehaviour` runs each in its own run of a slice of a suite, on one
shared cache, then runs the slice once more without any of them on that cache:

- a case is one cell of a misbehaving run, and one cell of the final clean run. Handled: a cell of the
  misbehaving plugin fails with its expected one-line reason naming it (or, for plugins whose damage the
  harness undoes, is ``ok``), and every number that is not the misbehaving plugin's own equals the
  reference run's; in the clean run, every cell equals the reference (nothing wrong was cached);
- ``wrong`` counts numbers served (status ok or not) with another value than the reference's, ``lost``
  reference numbers missing from the final clean run.

``tests/core/engine/test_plugin_misbehaviour.py`` runs every class; ``benchmarks/bench_reliability.py`` reports the
category "plugin misbehaviour".
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any, ClassVar

import attrs
import torch

import dememo

from qa.faults import Tally, load, run_args

_NEVER = {"never": dememo.Column("never", "info", "never produced")}


def plugin_of(family: str, *classes: type) -> object:
    """A plugin object registering ``classes`` through hook ``register_<family>`` (for ``registered``)."""

    class Plugin:
        pass

    def register(self: Any, register: Any) -> None:
        for cls in classes:
            register(cls)

    setattr(Plugin, f"register_{family}", dememo.hookimpl(register))
    return Plugin()


# -- metrics that modify what they read --------------------------------------------------------------------


@attrs.define
class ModelScribbler(dememo.Metric):
    """Doubles the evaluated model's weights in place (named to run before the cell's other metrics)."""

    name: ClassVar[str] = "aaa-model-scribbler"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        with torch.no_grad():
            for p in ev.model.parameters():
                p.mul_(2)
        return {"never": 1.0}


@attrs.define
class ReferenceScaler(dememo.Metric):
    """Scales the ``original`` reference model's weights in place, through ``.data``."""

    name: ClassVar[str] = "aaa-reference-scaler"
    needs: ClassVar[tuple[str, ...]] = ("original",)
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        for p in ev.reference("original").parameters():
            p.data.mul_(0.1)  # through .data: autograd's version counter does not see it
        return {"never": 1.0}


@attrs.define
class ProbsZeroer(dememo.Metric):
    """Zeroes the memoised test-set probabilities it is handed (shared with the cell's other metrics)."""

    name: ClassVar[str] = "aaa-probs-zeroer"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        ev.probs(ev.model, ev.splits.test).zero_()
        return {"never": 1.0}


@attrs.define
class ForgetScribbler(dememo.Metric):
    """Flips the forget set's labels in place (unlearning track)."""

    name: ClassVar[str] = "aaa-forget-scribbler"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        ev.task.forget.y.add_(1).remainder_(ev.task.forget.num_classes)
        return {"never": 1.0}


@attrs.define
class HistoryEraser(dememo.Metric):
    """Empties the training history and the cell description it is given (plain Python: copied per metric,
    so the harness has nothing to catch and nothing to repair)."""

    name: ClassVar[str] = "aaa-history-eraser"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        if ev.history is not None:
            ev.history.clear()
        ev.cell.clear()
        ev.costs.clear()
        return {"never": 1.0}


def _last_linear(model: torch.nn.Module) -> tuple[torch.nn.Module, str, torch.nn.Linear]:
    """(parent, attribute name, layer) of the model's last linear layer."""
    found = None
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, torch.nn.Linear):
                found = (parent, child_name, child)
    assert found is not None, "a model with a linear layer"
    return found


@attrs.define
class ForwardHooker(dememo.Metric):
    """Leaves a forward hook on the evaluated model that flips its logits."""

    name: ClassVar[str] = "aaa-forward-hooker"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        _last_linear(ev.model)[2].register_forward_hook(lambda m, i, o: o.flip(1))
        return {"never": 1.0}


@attrs.define
class LayerSwapper(dememo.Metric):
    """Replaces the ``original`` reference's last layer with a fresh one (no tensor of it changes)."""

    name: ClassVar[str] = "aaa-layer-swapper"
    needs: ClassVar[tuple[str, ...]] = ("original",)
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        parent, attr, layer = _last_linear(ev.reference("original"))
        setattr(parent, attr, torch.nn.Linear(layer.in_features, layer.out_features))
        return {"never": 1.0}


@attrs.define
class ModeFlipper(dememo.Metric):
    """Leaves the evaluated model in train mode and its parameters frozen."""

    name: ClassVar[str] = "aaa-mode-flipper"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        ev.model.train()
        ev.model.requires_grad_(False)
        return {"never": 1.0}


@attrs.define
class LabelZeroer(dememo.Metric):
    """Sets the test labels to 0 through ``.data`` (an integer tensor, no version bump)."""

    name: ClassVar[str] = "aaa-label-zeroer"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        ev.splits.test.y.data.fill_(0)
        return {"never": 1.0}


@attrs.define
class RowSwapper(dememo.Metric):
    """Swaps two output rows of the evaluated model's last layer through NumPy (sums unchanged)."""

    name: ClassVar[str] = "aaa-row-swapper"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        w = _last_linear(ev.model)[2].weight.detach().numpy()
        w[[0, 1]] = w[[1, 0]]
        return {"never": 1.0}


@attrs.define
class SplitSwapper(dememo.Metric):
    """Rebinds the frozen ``splits.test`` to the validation split."""

    name: ClassVar[str] = "aaa-split-swapper"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        object.__setattr__(ev.splits, "test", ev.splits.val)
        return {"never": 1.0}


@attrs.define
class NestedTainter(dememo.Metric):
    """Negates the model's weights, then asks for another metric on it (which must not be cached)."""

    name: ClassVar[str] = "aaa-nested-tainter"
    uses: ClassVar[tuple[str, ...]] = ("clean-accuracy",)
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        with torch.no_grad():
            for p in ev.model.parameters():
                p.neg_()
        ev.metric("clean-accuracy")
        return {"never": 1.0}


@attrs.define
class MutateThenInterrupt(dememo.Metric):
    """Zeroes the model, then raises KeyboardInterrupt itself (no signal)."""

    name: ClassVar[str] = "aaa-mutate-then-interrupt"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        with torch.no_grad():
            for p in ev.model.parameters():
                p.zero_()
        raise KeyboardInterrupt


@attrs.define
class ProcessChanger(dememo.Metric):
    """Leaves CPU autocast on, a global module hook, another working directory, its own SIGINT handler and
    every warning turned into an error: all restored by the harness, so its cells are fine."""

    name: ClassVar[str] = "aaa-process-changer"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        import os
        import signal
        import tempfile
        import warnings

        torch.set_autocast_enabled("cpu", True)
        torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: o * 0 if isinstance(o, torch.Tensor) else o)
        os.chdir(tempfile.gettempdir())
        signal.signal(signal.SIGINT, signal.default_int_handler)
        warnings.simplefilter("error")
        return {"never": 1.0}


@attrs.define
class RecipePoker(dememo.Metric):
    """Sets the (frozen) training recipe's epochs to 0 for every later training."""

    name: ClassVar[str] = "aaa-recipe-poker"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        object.__setattr__(ctx.recipe, "epochs", 0)
        return {"never": 1.0}


@attrs.define
class StorageErrorMetric(dememo.Metric):
    """Raises the harness's StorageError (which, from dememo's own storage, would stop the run)."""

    name: ClassVar[str] = "storage-error-metric"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        raise dememo.errors.StorageError("disk full (not really)")


@attrs.define
class NeedsRaiser(dememo.Metric):
    """Its ``needs_on`` declaration raises."""

    name: ClassVar[str] = "needs-raiser"
    columns: ClassVar[dict] = _NEVER

    @classmethod
    def needs_on(cls, track):
        raise RuntimeError("cannot decide")

    def compute(self, ev, ctx):
        return {"never": 1.0}


@attrs.define
class DatasetErrorMetric(dememo.Metric):
    name: ClassVar[str] = "dataset-error-metric"
    columns: ClassVar[dict] = _NEVER

    def compute(self, ev, ctx):
        raise dememo.DatasetError("cannot find my side data")


# -- unlearners, poisoners, attacks and datasets that end, interrupt or change global state -----------------


@attrs.define
class Exiter(dememo.Unlearner):
    name: ClassVar[str] = "exiter"

    def unlearn(self, model, task, ctx):
        sys.exit(3)


@attrs.define
class QuietExiter(dememo.Poisoner):
    """``sys.exit()`` with no code: a process that ended here would report success."""

    name: ClassVar[str] = "quiet-exiter"
    norm: ClassVar[str] = "linf"

    def poison(self, data, ctx):
        sys.exit()


@attrs.define
class Interrupter(dememo.Unlearner):
    name: ClassVar[str] = "interrupter"

    def unlearn(self, model, task, ctx):
        raise KeyboardInterrupt


@attrs.define
class CalledRaiser(dememo.Unlearner):
    """Its ``called()`` declaration raises."""

    name: ClassVar[str] = "called-raiser"

    @classmethod
    def called(cls):
        raise RuntimeError("cannot list them")

    def unlearn(self, model, task, ctx):
        return model


@attrs.define
class UserErrorRaiser(dememo.Unlearner):
    name: ClassVar[str] = "user-error-raiser"

    def unlearn(self, model, task, ctx):
        raise dememo.UserError("my config file is missing")


@attrs.define
class StateChanger(dememo.Unlearner):
    """Leaves torch in float64, without autograd, deterministic, reseeded (named to run first)."""

    name: ClassVar[str] = "aaa-state-changer"

    def unlearn(self, model, task, ctx):
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(0)
        return model


@attrs.define
class GradDisabler(dememo.Attack):
    """Switches autograd off for the rest of the process."""

    name: ClassVar[str] = "grad-disabler"

    def attack(self, model, data, ctx):
        torch.set_grad_enabled(False)
        return model


@attrs.define
class SelfTuner(dememo.Unlearner):
    """Changes its own hyper-parameter while running (a value its other cells and its cache key share)."""

    name: ClassVar[str] = "self-tuner"
    lr: float = 0.01

    def unlearn(self, model, task, ctx):
        self.lr *= 10
        return model


@attrs.define
class Architect(dememo.Unlearner):
    """Widens the suite's architecture through ``ctx.architecture`` (shared by every cell of the dataset):
    every model built after it would have other shapes under the same cache keys."""

    name: ClassVar[str] = "architect"

    def unlearn(self, model, task, ctx):
        first = attrs.fields(type(ctx.architecture))[0].name
        object.__setattr__(ctx.architecture, first, getattr(ctx.architecture, first) * 2)
        return model


@attrs.define
class MissingData(dememo.DatasetSource):
    name: ClassVar[str] = "missing-data"
    budgets: ClassVar[dict[str, float]] = {"linf": 0.25}

    def load(self, data_dir, download):
        raise dememo.DatasetError("missing-data: files not found; pass --download")


#: (hook family, class, the run option that selects it, text each of its failed cells must show; None: its
#: cells must be ``ok`` because the harness undoes the damage)
CASES: list[tuple[str, type, str, str | None]] = [
    ("metrics", ModelScribbler, "--metric", "metric 'aaa-model-scribbler' modified its input model."),
    ("metrics", ReferenceScaler, "--metric", "metric 'aaa-reference-scaler' modified its input reference 'original'"),
    ("metrics", ProbsZeroer, "--metric", "metric 'aaa-probs-zeroer' modified its input ev.probs"),
    ("metrics", ForgetScribbler, "--metric", "metric 'aaa-forget-scribbler' modified its input task.forget.y"),
    ("metrics", HistoryEraser, "--metric", None),
    ("metrics", ForwardHooker, "--metric", "metric 'aaa-forward-hooker' modified its input model (its layers, mode"),
    ("metrics", LayerSwapper, "--metric", "metric 'aaa-layer-swapper' modified its input reference 'original' (its layers"),
    ("metrics", ModeFlipper, "--metric", "metric 'aaa-mode-flipper' modified its input model (its layers, mode"),
    ("metrics", LabelZeroer, "--metric", "metric 'aaa-label-zeroer' modified its input splits (its values"),
    ("metrics", RowSwapper, "--metric", "metric 'aaa-row-swapper' modified its input model (its values"),
    ("metrics", SplitSwapper, "--metric", "metric 'aaa-split-swapper' modified its input splits (which tensors it holds)"),
    ("metrics", NestedTainter, "--metric", "metric 'aaa-nested-tainter' modified its input model."),
    ("metrics", MutateThenInterrupt, "--metric", "metric 'aaa-mutate-then-interrupt' modified its input model."),
    ("metrics", ProcessChanger, "--metric", None),
    ("metrics", RecipePoker, "--metric", "metric 'aaa-recipe-poker' changed the parameters of 'Recipe'"),
    ("metrics", StorageErrorMetric, "--metric", "metric 'storage-error-metric' raised StorageError: disk full (not really)"),
    ("metrics", NeedsRaiser, "--metric", "metric 'needs-raiser'.needs_on() raised RuntimeError: cannot decide"),
    ("unlearners", CalledRaiser, "--unlearner", "unlearner 'called-raiser'.called() raised RuntimeError: cannot list them"),
    ("metrics", DatasetErrorMetric, "--metric", "metric 'dataset-error-metric' raised DatasetError: cannot find my side data"),
    ("unlearners", Exiter, "--unlearner", "unlearner 'exiter' called sys.exit(3)"),
    ("poisoners", QuietExiter, "--poisoner", "poisoner 'quiet-exiter' called sys.exit(None)"),
    ("unlearners", Interrupter, "--unlearner", "unlearner 'interrupter' raised KeyboardInterrupt"),
    ("unlearners", UserErrorRaiser, "--unlearner", "unlearner 'user-error-raiser' raised UserError: my config file is missing"),
    ("unlearners", StateChanger, "--unlearner", None),
    ("attacks", GradDisabler, "--attack", None),
    ("unlearners", SelfTuner, "--unlearner", "unlearner 'self-tuner' changed its own parameters"),
    ("unlearners", Architect, "--unlearner", "unlearner 'architect' changed the parameters of 'mlp'"),
]

#: record field that names a family's plugin in a cell
FIELD = {"unlearners": "unlearner", "poisoners": "poisoner", "attacks": "attack"}


def numbers(results: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    """Every cell's metric values by what the cell is (its key also hashes the metric set), wall-clock
    columns left out."""
    clock = {col for cols in results["columns"].values() for col, c in cols.items() if c.get("wall_clock")}
    fields = ("track", "dataset", "poisoner", "train_attack", "unlearner", "forget", "attack", "seed")
    return {tuple(c.get(f) for f in fields): {k: v for k, v in c["metrics"].items() if k not in clock}
            for c in results["cells"]}


def differences(got: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    """Reference numbers that ``got`` has with another value (cells or columns it lacks are not compared)."""
    ref = numbers(reference)
    out = []
    for slot, values in numbers(got).items():
        for col, v in values.items():
            if col in ref.get(slot, {}) and ref[slot][col] != v:
                out.append(f"{'/'.join(str(s) for s in slot if s)} {col}: {v} instead of {ref[slot][col]}")
    return out


def is_own(cell: dict[str, Any], family: str, cls: type) -> bool:
    """Whether ``cell`` is one of the misbehaving plugin's (for a metric: every cell it ran in)."""
    if family == "metrics":
        return cls.name in {m["name"] for m in cell["params"]["metrics"]}
    return cell.get(FIELD[family]) == cls.name


def run_quietly(argv: list[str]) -> int:
    from dememo import cli

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli.main(argv)


def misbehaviour(suite: str, workdir: Path, reference: dict[str, Any], extra: list[str],
                 cases: list[tuple[str, type, str, str | None]] | None = None) -> Tally:
    """Run each misbehaving plugin of ``cases`` (default :data:`CASES`) in its own in-process run of the
    slice ``extra`` on one cache, then the slice alone on that cache; see the module docstring."""
    from dememo.testing.fixtures import registered

    tally = Tally("plugin misbehaviour")
    cache = workdir / "misbehaviour-cache"
    for family, cls, option, says in cases or CASES:
        out = workdir / f"misbehaviour-{cls.name}"
        with registered(plugin_of(family, cls), name=f"misbehaving-{cls.name}"):
            code = run_quietly(run_args(suite, out, cache, [*extra, option, cls.name]))
        if not (out / "results.json").exists():
            tally.case(False, f"{cls.name}: no results (exit {code})")
            continue
        got = load(out)
        for cell in got["cells"]:
            message = (cell.get("error") or {}).get("message") or ""
            if is_own(cell, family, cls):
                ok = cell["status"] == "ok" if says is None else \
                    (cell["status"] == "failed" and says in message and "\n" not in message)
                tally.case(ok, f"{cls.name} @ {cell['method']}: {cell['status']} {message[:160]}")
            else:
                tally.case(cell["status"] == "ok", f"{cls.name} run, {cell['method']}: {cell['status']} {message[:160]}")
        wrong = differences(got, reference)
        tally.wrong += len(wrong)
        tally.notes += [f"{cls.name} run: {w}" for w in wrong[:3]]
    clean = workdir / "misbehaviour-clean"
    run_quietly(run_args(suite, clean, cache, extra))
    got = load(clean)
    have = numbers(got)
    for slot, values in numbers(reference).items():
        same = have.get(slot) == values
        tally.case(same, f"clean re-run on the shared cache: {slot} differs")
        tally.lost += sum(k not in have.get(slot, {}) for k in values)
        tally.wrong += sum(k in have.get(slot, {}) and have[slot][k] != v for k, v in values.items())
    return tally


def with_missing_dataset(suite_text: str) -> str:
    """A suite file's text with a second dataset, :class:`MissingData`, before its first forget set."""
    return suite_text.replace("[[forget]]", '[[datasets]]\nname = "missing-data"\narchitecture = "mlp"\n'
                              'recipe = { epochs = 5, batch_size = 128, lr = 0.05 }\n\n[[forget]]', 1)


def dataset_failure(suite_text: str, workdir: Path, reference: dict[str, Any], extra: list[str]) -> Tally:
    """A suite of the reference's dataset plus :class:`MissingData`: a case is one cell. Handled: the
    missing dataset's cells fail naming its plugin and saying what to do, the other dataset's equal the
    reference."""
    from dememo.testing.fixtures import registered

    tally = Tally("plugin misbehaviour")
    suite = workdir / "two-datasets.toml"
    suite.write_text(with_missing_dataset(suite_text))
    out = workdir / "misbehaviour-dataset"
    with registered(plugin_of("datasets", MissingData), name="misbehaving-dataset"):
        run_quietly(run_args(str(suite), out, workdir / "misbehaviour-dataset-cache", extra))
    got = load(out)
    for cell in got["cells"]:
        message = (cell.get("error") or {}).get("message") or ""
        if cell["dataset"] == "missing-data":
            tally.case(cell["status"] == "failed" and "dataset plugin 'missing-data'" in message
                       and "pass --download" in message, f"missing-data cell: {message[:160]}")
        else:
            tally.case(cell["status"] == "ok", f"{cell['method']}: {message[:160]}")
    wrong = differences(got, reference)
    tally.wrong += len(wrong)
    tally.notes += wrong[:3]
    tally.lost += sum(k not in numbers(got).get(slot, {}) for slot, values in numbers(reference).items()
                      if slot[1] == "digits" for k in values)
    return tally
