"""The hyper-parameter selection protocol of the unlearning track (``dememo-bench tune``).

Published unlearning numbers are hard to compare because each paper tunes its own method (often on the
test set) and leaves its baselines at defaults. dememo fixes one protocol and records it:

1. For every unlearner that declares a ``search_space`` and every (dataset, forget set) of the suite where
   it applies, the candidates are the grid of the search space over the suite's parameters (the suite's
   own values always included); above ``trials`` candidates, a seeded sample of them.
2. Each candidate unlearns the original model of every *tuning seed*. Tuning seeds are ``1000 + i``:
   disjoint from the evaluation seeds ``0 … S−1``, so the forget sets and original models whose numbers the
   leaderboard reports are never seen during selection.
3. The objective is the metric column that declares itself the tuning objective (``dememo.Tuning``; the
   first-party one is Avg Gap) against the paired retrain, computed with the *validation split in place of
   the test split* (TA becomes validation accuracy; MIA-efficacy's non-members are the validation images),
   and every column declaring a tuning role is recorded per seed under its declared name. The test split is
   never read. Smallest mean over tuning seeds wins (largest for a ``higher`` column); ties go to the earlier
   candidate (the suite's values come first).
4. Everything is written to ``tuning.json``: protocol, seeds, every trial's parameters, per-seed values and
   cost, and the chosen values. A suite applies it with ``tuning = "file.json"``; every cell then records
   whether its unlearner's parameters were tuned, set by hand (``--set``) or left at their defaults, and
   ``results.json`` carries the whole search log.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

import torch

from dememo.data import Splits
from dememo.errors import UserError
from dememo.evaluation import Evaluation
from dememo.hashing import digest, generator_for
from dememo.planning.planner import Cell, Configured, Planner
from dememo.planning.suite import ForgetSpec, Suite
from dememo.planning.tuning_record import SCHEMA, chosen, load  # noqa: F401 (also their old home, for callers)
from dememo.engine.failures import StageFailure
from dememo.engine.runner import Runner

SEED_BASE = 1000
#: the protocol as tuning.json states it, for the objective metric and whether the smallest or largest mean wins
PROTOCOL = ("grid over each unlearner's search_space (seeded sample above --trials); tuning seeds 1000+i, disjoint "
            "from evaluation seeds; objective: {metric} to the paired retrain with the validation split in place of "
            "the test split (the test split is never read); {best} mean over tuning seeds wins, ties to the "
            "suite's own values")


class Roles:
    """The tuning roles the installed metrics declare (``Column(tuning=dememo.Tuning(...))``) on the unlearning
    track: ``recorded`` (metric, column, recorded name) in record order, and the objective's metric, column and
    whether larger is better."""

    def __init__(self, registry):
        declared = []
        for name in registry.names("metric"):
            cls = registry.get("metric", name)
            if "unlearning" not in cls.tracks:  # type: ignore[attr-defined]
                continue
            for col, c in cls.columns.items():  # type: ignore[attr-defined]
                if c.tuning is not None:
                    declared.append((c.tuning.order, name, col, c))
        declared.sort(key=lambda d: d[:3])
        self.recorded = [(name, col, c.tuning.record) for _, name, col, c in declared]
        objectives = [(name, col, c) for _, name, col, c in declared if c.tuning.objective]
        if len(objectives) != 1:
            found = ", ".join(f"{n}.{col}" for n, col, _ in objectives) or "none"
            raise UserError(f"dememo-bench tune needs exactly one installed metric column declared as the tuning "
                            f"objective (Column(tuning=dememo.Tuning(..., objective=True))); found {found}")
        self.metric, self.column, column = objectives[0]
        self.larger = column.direction == "higher"
        self.key = column.tuning.record
        #: every metric a trial computes: the declaring ones and those they read through ``ev.metric``
        names, todo = [], [n for n, _, _ in self.recorded]
        while todo:
            n = todo.pop(0)
            if n not in names:
                names.append(n)
                todo += list(registry.get("metric", n).uses)  # type: ignore[attr-defined]
        self.metrics = names

    @property
    def protocol(self) -> str:
        return PROTOCOL.format(metric=self.metric, best="largest" if self.larger else "smallest")


def candidates(space: dict[str, tuple[Any, ...]], base: dict[str, Any], trials: int | None, salt: Any) -> list[dict[str, Any]]:
    """The parameter sets to try: the grid over ``space`` with the base values first; at most ``trials``
    of them (the base plus a sample seeded by ``salt``)."""
    keys = sorted(space)
    first = {k: base[k] for k in keys}
    grid = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(space[k] for k in keys))]
    ordered = [first] + [c for c in grid if c != first]
    if trials is not None and len(ordered) > trials:
        keep = sorted(torch.randperm(len(ordered) - 1, generator=generator_for("tuning", salt))[: max(trials - 1, 0)].tolist())
        ordered = [first] + [ordered[1 + i] for i in keep]
    return ordered


def _validation(splits: Splits) -> Splits:
    """The splits a tuning trial is scored on: the validation split stands in for the test split."""
    return Splits(splits.train, splits.val, splits.val)


class Tuner:
    """Runs the protocol with the harness's own stages (unlearning and retraining are cached and shared)."""

    def __init__(self, planner: Planner, runner: Runner, seeds: int, trials: int | None):
        self.planner, self.runner, self.seeds, self.trials = planner, runner, seeds, trials
        self.suite: Suite = planner.suite
        self.roles = Roles(planner.registry)

    def _metrics(self, entry) -> dict[str, Configured]:
        return {n: self.planner.single("metric", n, {}, entry) for n in self.roles.metrics}

    def _score(self, env, task, model, retrained, metrics: dict[str, Configured], seed: int) -> dict[str, float]:
        splits = _validation(env.splits)
        memo: dict[tuple[str, str], dict[str, float]] = {}
        ctx = self.runner.context(env, seed, digest(["tuning-metrics", seed]))

        def evaluation(target) -> Evaluation:
            return Evaluation(model=target, splits=splits, track="unlearning", task=task, train_data=splits.train,
                              references=lambda name: retrained, metric=lambda name, on="model": metric(name, on))

        def metric(name: str, on: str = "model") -> dict[str, float]:
            if (name, on) not in memo:
                target = model if on == "model" else retrained
                memo[name, on] = {k: float(v) for k, v in metrics[name].obj.compute(evaluation(target), ctx).items()}  # type: ignore[attr-defined]
            return memo[name, on]

        return {record: metric(name)[column] for name, column, record in self.roles.recorded}

    def tune_one(self, entry, spec: ForgetSpec, name: str) -> dict[str, Any]:
        """The search for one unlearner on one dataset and forget set."""
        data = self.planner.dataset_config(entry)
        env = self.runner.env(data)
        base = self.planner.single("unlearner", name, {}, entry)
        cls = type(base.obj)
        space = {k: tuple(v) for k, v in cls.search_space.items()}  # type: ignore[attr-defined]
        metrics = self._metrics(entry)
        attack = self.planner.single("attack", "none", {}, entry)
        trials = []
        for params in candidates(space, base.obj.params(), self.trials, [entry.name, spec.to_json(), name]):
            unlearner = self.planner.single("unlearner", name, params, entry)
            record: dict[str, Any] = {"params": params, "status": "ok", "per_seed": [], "seconds": 0.0}
            try:
                for i in range(self.seeds):
                    seed = SEED_BASE + i
                    cell = Cell("unlearning", data, seed, attack, [], unlearner=unlearner, forget=spec)
                    task = self.runner.task(env, cell)
                    unlearned = self.runner.unlearned(env, cell, task)
                    model, info = unlearned.model, unlearned.info
                    retrained = self.runner.standard(env, task.retain, seed).model
                    values = self._score(env, task, model, retrained, metrics, seed)
                    record["per_seed"].append({"seed": seed, **values})
                    record["seconds"] += info.seconds
            except StageFailure as exc:
                record.update(status="failed", error=exc.message)
            values = [s[self.roles.key] for s in record["per_seed"]]
            ok = record["status"] == "ok" and values and all(math.isfinite(g) for g in values)
            record["objective"] = sum(values) / len(values) if ok else None
            record["seconds"] = round(record["seconds"], 4)
            trials.append(record)
        scored = [t for t in trials if t["objective"] is not None]
        sign = -1.0 if self.roles.larger else 1.0  # min keeps the first of equal candidates: ties to the suite's values
        best = min(scored, key=lambda t: sign * t["objective"]) if scored else None
        return {
            "dataset": entry.name, "forget": spec.label(), "unlearner": name, "version": cls.version,
            "search_space": {k: list(v) for k, v in space.items()},
            "base": {k: base.obj.params()[k] for k in space},
            "trials": trials,
            "chosen": best["params"] if best else None,
            "objective": best["objective"] if best else None,
            "base_objective": trials[0]["objective"] if trials else None,
        }

    def run(self, unlearners: list[str], forget: list[str] | None = None, progress=None) -> dict[str, Any]:
        specs = [s for s in self.suite.forget if not forget or s.label() in forget]
        if forget and not specs:
            raise UserError(f"no forget set labelled {forget[0]!r} in suite {self.suite.name!r}; "
                            f"labels: {', '.join(s.label() for s in self.suite.forget)}")
        jobs = []
        for entry in self.suite.datasets:
            for spec in specs:
                for name in unlearners:
                    cls = self.planner.registry.get("unlearner", name)
                    if cls.search_space and spec.kind in cls.forget_kinds:  # type: ignore[attr-defined]
                        jobs.append((entry, spec, name))
        if not jobs:
            raise UserError("no unlearner to tune: none of those selected declares a search_space for these forget sets")
        started = time.perf_counter()
        entries = []
        for entry, spec, name in (progress(jobs, "tune") if progress else jobs):
            entries.append(self.tune_one(entry, spec, name))
        return {
            "schema": SCHEMA,
            "suite": self.suite.name,
            "protocol": self.roles.protocol,
            "objective": {"metric": self.roles.metric, "column": self.roles.column, "split": "val", "reference": "retrain"},
            "seeds": [SEED_BASE + i for i in range(self.seeds)],
            "trials_limit": self.trials,
            "wall_seconds": round(time.perf_counter() - started, 2),
            "entries": entries,
        }


def summary(tuning: dict[str, Any]) -> str:
    """A readable account of a tuning run: per entry the chosen values and their objective vs the base."""
    from tabulate import tabulate

    rows = []
    for e in tuning["entries"]:
        fmt = lambda v: "n/a" if v is None else f"{100 * v:.2f}"  # noqa: E731
        chosen_text = ", ".join(f"{k}={v}" for k, v in (e["chosen"] or {}).items()) or "(failed)"
        failed = sum(t["status"] != "ok" for t in e["trials"])
        rows.append([e["dataset"], e["forget"], e["unlearner"], chosen_text, fmt(e["objective"]), fmt(e["base_objective"]),
                     f"{len(e['trials'])}" + (f" ({failed} failed)" if failed else "")])
    return tabulate(rows, headers=["dataset", "forget", "unlearner", "chosen", "val Avg Gap %", "suite values %", "trials"])


def write(out: Path, tuning: dict[str, Any]) -> Path:
    from dememo import files
    from dememo.results import clean_number

    path = out / "tuning.json"
    files.atomic_write_json(path, clean_number(tuning))
    return path
