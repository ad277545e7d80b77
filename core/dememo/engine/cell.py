"""One cell's run: the stages up to the model(s) under evaluation, then every metric on every draw, into
the cell's :class:`~dememo.results.record.CellRecord`.

A :class:`CellRun` is made fresh for each cell (:func:`run_cell`) and holds what that cell's stages share
(:class:`~dememo.engine.runner.CellState`); the stages themselves are the :class:`~dememo.engine.runner.Runner`'s,
cached and shared across cells.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, NamedTuple

from dememo.data import Data, Task
from dememo.errors import ContractViolation, DatasetError
from dememo.hashing import digest
from dememo.families import Series
from dememo.planning.planner import Cell, DatasetConfig
from dememo.results.record import UNSET, CellRecord
from dememo.engine.failures import StageFailure
from dememo.engine.runner import CellState, DatasetEnv, Load, Runner, needs_of


def mean_series(draws: list[Series]) -> Series:
    """The point-wise mean of a series over a model-stage attack's random draws (same x grid)."""
    if len(draws) == 1:
        return draws[0]
    if any(d.x != draws[0].x for d in draws):
        raise ContractViolation("a series column changed its x grid between draws of one cell")
    return Series(draws[0].x, [sum(ys) / len(ys) for ys in zip(*(d.y for d in draws))], draws[0].x_name)


class Subject(NamedTuple):
    """What a cell's metrics read: the loaded dataset, the task, the training data and the model(s) under
    evaluation (one loader per model-stage attack draw: a cached model is read only if a metric is computed)."""

    env: DatasetEnv
    task: Task | None
    train_data: Data | None
    history: list | None
    draws: list[tuple[Load, str]]


def blank_record(cell: Cell) -> CellRecord:
    """A cell's record before it runs: what it is, status ``ok`` and no metrics yet."""
    return CellRecord(
        track=cell.track, dataset=cell.data.name, method=cell.method, attack=cell.attack.label, seed=cell.seed,
        key=cell.key, architecture=cell.data.architecture.label,
        poisoner=cell.poisoner.label if cell.poisoner else None,
        train_attack=cell.train_attack.label if cell.train_attack else None,
        unlearner=cell.unlearner.label if cell.unlearner else None,
        forget=cell.forget_label, selection=cell.selection, params=cell.config(), error=None, timings={},
    )


def model_reference(env: DatasetEnv, key: str, stage: str) -> dict[str, Any]:
    """How a record names the model its cell evaluates (``CellRecord.model``)."""
    return {"key": key, "stage": stage, "input_shape": list(env.splits.shape), "num_classes": env.splits.num_classes}


class CellRun:
    def __init__(self, runner: Runner, cell: Cell):
        self.runner, self.cell = runner, cell
        self.state = CellState()
        self.record = blank_record(cell)

    def run(self) -> CellRecord:
        """Every stage of the cell, then its metrics; a stage failure ends in the record, never raised."""
        record = self.record
        try:
            subject = self._subject(record)
            self._metrics(subject, record)
        except StageFailure as exc:
            record.fail(exc.stage, exc.message, exc.trace)
        return record

    def _load_env(self, config: DatasetConfig) -> DatasetEnv:
        try:
            return self.runner.env(config)
        except DatasetError as exc:  # that dataset's cells fail; the run goes on
            raise StageFailure("dataset", str(exc), "") from None

    def _subject(self, record: CellRecord) -> Subject:
        """Every stage up to the model(s) under evaluation, recording into ``record`` (and its timings)."""
        cell, runner = self.cell, self.runner
        timings = record.timings
        env = self._load_env(cell.data)
        task: Task | None = None
        train_data: Data | None = None
        history = None
        if cell.poisoner is not None:  # unlearnability, and interplay's owner share
            train_data, info, subset = runner.poisoned(env, cell, ratio=cell.owner.share if cell.owner else None)
            timings["poison"] = info.to_json()
            record.budget = env.config.budgets.get(type(cell.poisoner.obj).norm)  # type: ignore[attr-defined]
            if subset is not None:
                record.poison_subset = subset
        if cell.track == "unlearnability":
            assert train_data is not None
            model, model_key, info, history = runner.trained(env, cell, train_data)
            timings["train"] = info.to_json()
            record.model = model_reference(env, model_key, "train" if cell.train_attack.name == "none" else "train-attack")  # type: ignore[union-attr]
        else:
            original_data = None
            if cell.track == "interplay":
                assert train_data is not None
                task, self.state.owner_share = runner.interplay_task(env, cell, train_data)
                original_data = train_data
                record.interplay_target = cell.target
            else:
                if cell.forget is not None and cell.forget.kind == "memorization":  # the forget set's scores, timed
                    timings["scores"] = runner.scores_stage(env, cell.forget.scorer, cell.seed)[1].to_json()
                task = runner.task(env, cell)
            _, _, info, _ = runner.standard(env, env.splits.train if original_data is None else original_data, cell.seed)
            timings["train"] = info.to_json()
            retrain = runner.standard(env, task.retain, cell.seed).info  # the paired retrain: every gap's reference
            timings["reference:retrained"] = retrain.to_json()
            unlearned = runner.unlearned(env, cell, task, original_data)
            model, model_key, info = unlearned.load, unlearned.key, unlearned.info
            timings["unlearn"] = info.to_json()
            record.model = model_reference(env, model_key, "unlearn")
            if unlearned.meta is not None:
                record.unlearn_record = unlearned.meta
            # the unlearning's run time, unless it ran elsewhere (an external model: its stage only read the weights)
            external = (cell.selection or {}).get("source") == "external"
            self.state.costs = {"retrain_seconds": retrain.seconds, **({} if external else {"unlearn_seconds": info.seconds})}
            record.forget_size = len(task.forget)
        draws, info = runner.attacked(env, cell, model, model_key, task)
        timings["attack"] = info.to_json()
        if len(draws) > 1:
            record.draws = len(draws)
        ref_data = runner.reference_data(env, task, train_data if cell.track == "interplay" else None)
        needed = sorted({n for m in cell.metrics for n in needs_of(m, cell.track, quiet=True) if n in ref_data})
        for name in needed:  # train shared references up front, so their cost is not billed to a metric
            info = runner.standard(env, ref_data[name], cell.seed).info.to_json()
            timings.setdefault(f"reference:{name}", info)  # the paired retrain's entry says whether this cell trained it
        return Subject(env, task, train_data, history, draws)

    def _metrics(self, subject: Subject, record: CellRecord) -> None:
        """The cell's metrics on every draw, averaged into ``record`` (with each metric's seconds under
        ``timings["metric:<name>"]`` and the whole under ``timings["metrics"]``); raises the first failure after
        all ran. A metric that modified shared data fails, and the rest run on pristine copies reloaded from
        the cache."""
        cell = self.cell
        by_name = {m.name: m for m in cell.metrics}
        start = time.perf_counter()
        errors: list[StageFailure] = []
        for metric in cell.metrics:
            per_draw, seconds, cached, keys = [], 0.0, True, []
            for m, k in subject.draws:
                try:
                    values, info = self.runner.metric_stage(subject.env, cell, metric, m, k, subject.task,
                                                            subject.train_data, subject.history, by_name, self.state)
                    per_draw.append(values)
                    seconds, cached = seconds + info.seconds, cached and info.cached
                    keys.append(info.key or "")
                except StageFailure as exc:
                    errors.append(exc)
                    if exc.mutated:  # nothing more is computed from the objects it touched
                        self.state.evals = {}
                        subject = self._subject(blank_record(cell))
                    break
            else:
                # each metric's own cost (its computation on every draw, borrowed cached work included), so a
                # profile can say which metric a cell's time went to
                record.timings[f"metric:{metric.name}"] = {"seconds": round(seconds, 4), "cached": cached,
                                                          "key": (keys[0] if len(keys) == 1 else digest(keys))[:16]}
                try:
                    for column, first in per_draw[0].items():
                        vals = [d[column] for d in per_draw]
                        if isinstance(first, Series):
                            if record.series is UNSET:
                                record.series = {}
                            record.series[column] = mean_series(vals).to_json()
                        else:
                            record.metrics[column] = sum(vals) / len(vals)
                except ContractViolation as exc:  # a plugin bug fails this cell, never the run
                    errors.append(StageFailure(f"metric:{metric.name}", str(exc), traceback.format_exc()))
        record.timings["metrics"] = {"seconds": round(time.perf_counter() - start, 4)}
        if errors:
            raise errors[0]


def run_cell(runner: Runner, cell: Cell) -> CellRecord:
    """Run one cell with ``runner``'s stages; plugin failures are captured in the returned record, never
    raised."""
    return CellRun(runner, cell).run()
