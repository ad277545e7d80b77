"""Unlearning in your own code, evaluated by dememo: ``export`` writes a suite's original model and the splits of
one (dataset, seed, forget set) to a directory; ``load_export`` reads them back as tensors and a model;
``evaluate`` runs every attack and metric of the suite on the model you unlearned, against the same
references, as a row of its own (the NeurIPS 2023 unlearning challenge's workflow: the original model and
the splits out, the unlearned model back).

An export directory holds ``export.json`` (what it is: suite and its fingerprint, dataset and the
fingerprint of its loaded splits, seed, forget set, architecture), ``original.pt`` (the original model's
state dict, ``torch.save``), ``data.npz`` (``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test``,
``y_test``: N×C×H×W images in [0, 1], stored as uint8 when they are multiples of 1/255) and ``splits.npz``
(``retain`` and ``forget``: positions in the training split).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dememo import files, plugins
from dememo.api.launch import Launch, announce_end, caller_settings
from dememo.api.options import RunOptions, names_of, run_options
from dememo.api.results import Results, build_model
from dememo.engine.external import check_state, read_state
from dememo.errors import StorageError, UserError, storage_advice

SCHEMA = "dememo.export/1"
#: what an external row may be called (it also names the output folder eval-NAME)
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=(),-]{0,79}")


def _images(x: torch.Tensor) -> np.ndarray:
    """Images as stored: uint8 when every value is a multiple of 1/255 (exactly, after the float32 round
    trip), else float32."""
    x = x.detach().to("cpu", torch.float32)
    as_bytes = (x * 255).round()
    if torch.equal(as_bytes / 255, x):
        return as_bytes.to(torch.uint8).numpy()
    return x.numpy()


EXPORT_OPTIONS = ("cache_dir", "data_dir", "download", "device", "sets")


def _launch(suite: str, dataset: str, forget: str, seed: int, **options: Any) -> Launch:
    from dememo.errors import did_you_mean

    for name in options:
        if name not in EXPORT_OPTIONS:
            raise UserError(f"unknown export option {name!r}{did_you_mean(name, EXPORT_OPTIONS)}; options: "
                            f"{', '.join(EXPORT_OPTIONS)}")
    launch = Launch(RunOptions(suite=suite, datasets=dataset, forget=forget, tracks="unlearning", seeds=seed + 1,
                               unlearners=["retrain"], attacks="none", jobs=1, progress=False, **options))
    if not any(c.seed == seed for c in launch.cells):
        raise UserError(f"suite {launch.suite.name!r} plans no unlearning cell for dataset {dataset!r}, forget set "
                        f"{forget!r} and seed {seed}")
    return launch


def _source(suite: str) -> str:
    """A shipped suite's name, or a suite file's absolute path (the export may be evaluated elsewhere)."""
    path = Path(suite)
    return str(path.absolute()) if path.suffix == ".toml" or path.exists() else suite


def export(out: Path | str, suite: str = "quick", *, dataset: str, forget: str, seed: int = 0, force: bool = False,
           **options: Any) -> Path:
    """Write the original model of ``suite``'s ``dataset`` at ``seed`` (trained now unless cached) with the
    splits of ``forget`` to ``out``; returns ``out``. ``options``: ``cache_dir``, ``data_dir``, ``download``,
    ``device``, ``sets`` as for :func:`dememo.run`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"--seed must be a whole number ≥ 0, got {seed!r}")
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} is a file; give a directory for the export")
    if (Path(out) / "export.json").exists() and not force:
        raise UserError(f"{out} holds an export already; give another --out, or --force to replace it")
    with caller_settings():
        return _export(Path(out), suite, dataset, forget, seed, options)


def _export(out: Path, suite: str, dataset: str, forget: str, seed: int, options: dict[str, Any]) -> Path:
    launch = _launch(suite, dataset, forget, seed, **options)
    cell = next(c for c in launch.cells if c.seed == seed)
    runner = launch.open(need_output=False)
    env = runner.env(cell.data)
    task = runner.task(env, cell)
    original = runner.standard(env, env.splits.train, seed)
    state = {k: v.detach().to("cpu") for k, v in original.model.state_dict().items()}
    arch = cell.data.architecture
    splits = env.splits
    info = {
        "schema": SCHEMA, "suite": launch.suite.name, "suite_source": _source(launch.options.suite),
        "suite_fingerprint": launch.suite.fingerprint(), "dataset": cell.data.name,
        "data_fingerprint": env.fingerprint, "seed": seed, "forget": cell.forget_label,
        "forget_spec": cell.forget.to_json() if cell.forget else None,
        "architecture": {"name": arch.name, "params": arch.obj.params()},
        "input_shape": list(splits.shape), "num_classes": splits.num_classes,
        "sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test),
                  "retain": len(task.retain), "forget": len(task.forget)},
        "recipe": cell.data.entry.recipe.spec(), "original_key": original.key, "sets": launch.options.sets,
        "files": {"model": "original.pt", "data": "data.npz", "splits": "splits.npz"},
        "evaluate": "dememo-bench eval --model YOUR_WEIGHTS.pt --from THIS_DIR --name YOUR_METHOD",
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        torch.save(state, out / "original.pt")
        np.savez_compressed(out / "data.npz", **{f"{k}_{part}": v for part in ("train", "val", "test")
                                                 for k, v in (("x", _images(getattr(splits, part).x)),
                                                              ("y", getattr(splits, part).y.to("cpu").numpy()))})
        np.savez_compressed(out / "splits.npz", retain=task.retain.index.to("cpu").numpy(),
                            forget=task.forget.index.to("cpu").numpy())
        files.atomic_write_json(out / "export.json", info)
    except OSError as exc:
        raise StorageError(f"cannot write the export to {out}: {storage_advice(exc, '--out')}") from None
    return out


class Export:
    """An export directory read back: its description (``info``), the splits as tensors and the original
    model."""

    def __init__(self, where: Path | str):
        self.where = Path(where)
        try:
            self.info = json.loads((self.where / "export.json").read_text())
        except FileNotFoundError:
            raise UserError(f"--from {self.where}: no export.json; make one with 'dememo-bench export'") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"--from {self.where}: export.json is not readable ({exc})") from None
        if not isinstance(self.info, dict) or self.info.get("schema") != SCHEMA:
            raise UserError(f"--from {self.where}: export.json is not a {SCHEMA} file")
        self._data: dict[str, np.ndarray] | None = None

    def _arrays(self) -> dict[str, np.ndarray]:
        if self._data is None:
            with np.load(self.where / "data.npz") as data, np.load(self.where / "splits.npz") as splits:
                self._data = {**{k: data[k] for k in data.files}, **{k: splits[k] for k in splits.files}}
        return self._data

    def split(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of ``train``, ``val``, ``test``, ``retain`` or ``forget``: float32 images in [0, 1]."""
        parts = ("train", "val", "test", "retain", "forget")
        if part not in parts:
            from dememo.errors import did_you_mean

            raise UserError(f"no split {part!r}{did_you_mean(str(part), parts)}; splits: {', '.join(parts)}")
        a = self._arrays()
        if part in ("retain", "forget"):
            x, y = self.split("train")
            positions = torch.as_tensor(a[part], dtype=torch.int64)
            return x[positions], y[positions]
        x = torch.as_tensor(a[f"x_{part}"])
        x = x.to(torch.float32) / 255 if x.dtype == torch.uint8 else x.to(torch.float32)
        return x, torch.as_tensor(a[f"y_{part}"], dtype=torch.int64)

    def retain(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split("retain")

    def forget(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split("forget")

    def architecture(self) -> nn.Module:
        """A freshly built model of the export's architecture (needs its architecture plugin installed)."""
        return build_model(self.info["architecture"], self.info["input_shape"], self.info["num_classes"])

    def model(self) -> nn.Module:
        """The original model (train mode: ready to be unlearned)."""
        model = self.architecture()
        model.load_state_dict(torch.load(self.where / "original.pt", map_location="cpu", weights_only=True))
        return model


def load_export(where: Path | str) -> Export:
    return Export(where)


def evaluate(model: Path | str, source: Path | str, name: str, **options: Any) -> Results:
    """Run every attack and metric of the export's suite on the state dict in ``model`` (a model unlearned from
    the export in ``source``) against the same references, as the row ``name`` beside the suite's reference
    rows (``unlearners`` adds more; ``attacks``/``metrics`` narrow; ``out`` defaults to
    ``./dememo-results/eval-<name>``). The same checks and output as :func:`dememo.run`."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UserError(f"--name {name!r}: use letters, digits and . _ - + = ( ) , (up to 80, not starting with a dot "
                        "or dash), e.g. --name my-finetune; it labels the row and names the output folder")
    installed = {n for family in ("unlearner", "poisoner") for n in plugins.get_registry().names(family)}
    if name.split("(", 1)[0] in installed:
        raise UserError(f"--name {name!r} is the name of an installed method; choose another (e.g. my-{name})")
    exp = Export(source)
    info = exp.info
    state = read_state(model)
    check_state(state, exp.architecture(), f"--model {model}")
    for fixed in ("suite", "datasets", "forget", "tracks", "seeds", "sets", "external"):
        if fixed in options:
            raise UserError(f"evaluate: {fixed!r} comes from the export in {exp.where}, not from an option")
    refs = names_of(options.pop("unlearners", None))
    if options.get("out") is None:
        options["out"] = Path("dememo-results") / f"eval-{name}"
    opts = run_options(info["suite_source"], dict(
        datasets=info["dataset"], forget=info["forget"], tracks="unlearning", seeds=info["seed"] + 1,
        unlearners=["retrain", *refs], sets=info.get("sets") or {},
        external={"path": str(Path(model).absolute()), "name": name, "seed": info["seed"]}, **options))
    with caller_settings():
        launch = Launch(opts)
        if launch.suite.fingerprint() != info["suite_fingerprint"]:
            raise UserError(f"suite {launch.suite.name!r} changed since the export in {exp.where} (its fingerprint "
                            "differs): export again with this suite, then unlearn from that export")
        if any(c.method == name for c in launch.cells if c.unlearner is not None and c.unlearner.alias is None):
            raise UserError(f"--name {name!r} is the label of an installed method's row; choose another")
        runner = launch.open()
        cell = next(c for c in launch.cells if c.unlearner is not None and c.unlearner.alias == name)
        env = runner.env(cell.data)
        if env.fingerprint != info["data_fingerprint"]:
            raise UserError(f"dataset {info['dataset']!r} loads differently from the one exported to {exp.where} "
                            "(its fingerprint differs): export again with this installation")
        if runner.train_key(env, env.splits.train, info["seed"]) != info["original_key"]:
            raise UserError(f"the original model this run would train differs from the one exported to {exp.where} "
                            "(recipe, architecture or --set values changed): export again")
        finished = launch.execute()
    announce_end(finished, launch.estimated)
    if finished.outcome.interrupted:
        raise KeyboardInterrupt(f"interrupted; partial results are in {finished.where}")
    return Results(finished.data, finished.written, launch.cache)
