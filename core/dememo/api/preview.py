"""A run seen before it starts (``dememo-bench plan``, ``--dry-run``, ``dememo.plan``): its cells by track,
dataset and forget set, how many the cache already holds, the stages left to compute and what they should
cost (:mod:`dememo.engine.costs`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
from tabulate import tabulate

from dememo.api.launch import Launch
from dememo.progress import duration
from dememo.engine.cell import run_cell
from dememo.engine.costs import Estimate
from dememo.engine.memo import NotCached
from dememo.planning.planner import Cell

TRACK_ORDER = ("unlearnability", "unlearning", "interplay")


@attrs.frozen
class Plan:
    """What a run would do: ``cells`` planned, the keys of those ``cached`` whole, the ``estimate`` of what is
    left, and where it would run (``jobs`` workers on ``device``)."""

    suite: str
    cells: list[Cell]
    cached: frozenset[str]
    estimate: Estimate
    jobs: int
    device: str
    where: str
    cache: str
    #: plugins left out because they cannot be built from their defaults (``Planner.skipped``), one line each
    skipped: tuple[str, ...] = ()

    @property
    def to_run(self) -> int:
        return len(self.cells) - len(self.cached)

    def groups(self) -> list[tuple[str, str, str, int, int]]:
        """(track, dataset, forget set, cells, cached) per table of the leaderboard-to-be."""
        total: Counter[tuple[str, str, str]] = Counter()
        hit: Counter[tuple[str, str, str]] = Counter()
        for c in self.cells:
            key = (c.track, c.data.name, c.forget_label or "—")
            total[key] += 1
            hit[key] += c.key in self.cached
        order = sorted(total, key=lambda k: (TRACK_ORDER.index(k[0]) if k[0] in TRACK_ORDER else 9, k[1], k[2]))
        return [(*k, total[k], hit[k]) for k in order]

    def wall_seconds(self) -> float:
        """The compute spread over the workers (an upper bound's guess: cells of one dataset and seed share
        stages, so workers sometimes wait for each other)."""
        return self.estimate.seconds / max(1, self.jobs)

    def line(self) -> str:
        """One line: cells, cached, to run, and the estimated compute and wall time."""
        tracks = Counter(c.track for c in self.cells)
        per = ", ".join(f"{t} {tracks[t]}" for t in TRACK_ORDER if tracks[t])
        head = f"{len(self.cells)} cells ({per}); "
        if not self.to_run:
            return head + "all cached: nothing to compute"
        cached = f"{len(self.cached)} cached, " if self.cached else ""
        return (head + f"{cached}{self.to_run} to run; estimated compute {duration(self.estimate.seconds)}"
                f" (about {duration(self.wall_seconds())} on {self.jobs} worker{'s' if self.jobs > 1 else ''})")

    def render(self) -> str:
        """The plan as the terminal shows it: a table per track/dataset/forget set, the stages to compute with
        their estimated cost, and what the estimate rests on."""
        rows = [[t, d, f, n, h, n - h] for t, d, f, n, h in self.groups()]
        parts = [f"plan of suite {self.suite!r} on {self.device}, {self.where}; cache {self.cache}", "",
                 tabulate(rows, headers=["track", "dataset", "forget set", "cells", "cached", "to run"],
                          tablefmt="simple", disable_numparse=True), ""]
        if self.to_run:
            est = self.estimate
            stage_rows = [[kind, est.stages.get(kind, 0), duration(seconds)]
                          for kind, seconds in sorted(est.by_kind.items(), key=lambda kv: -kv[1])]
            parts += ["stages to compute (shared stages counted once):",
                      tabulate(stage_rows, headers=["stage", "count", "estimated"], tablefmt="simple",
                               disable_numparse=True), ""]
        parts.append(self.line())
        parts += [f"skipped: {note}" for note in self.skipped]
        if self.to_run:
            parts.append(f"costs from: {'; '.join(self.estimate.sources) or 'no measurement (a guess of every stage)'}")
            if self.estimate.guessed:
                shown = ", ".join(self.estimate.guessed[:4])
                more = f" and {len(self.estimate.guessed) - 4} more" if len(self.estimate.guessed) > 4 else ""
                parts.append(f"guessed from other stages of their kind (never measured): {shown}{more}")
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "cells": len(self.cells), "cached": len(self.cached), "to_run": self.to_run,
                "groups": [dict(zip(("track", "dataset", "forget", "cells", "cached"), g)) for g in self.groups()],
                "estimate": {"compute_seconds": round(self.estimate.seconds, 1),
                             "wall_seconds": round(self.wall_seconds(), 1), "by_stage": self.estimate.by_kind,
                             "stages": self.estimate.stages, "sources": list(self.estimate.sources),
                             "guessed": list(self.estimate.guessed)},
                "jobs": self.jobs, "device": self.device, "skipped": list(self.skipped)}

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"<Plan {self.line()}>"


def cached_cells(launch: Launch) -> set[str]:
    """The keys of the planned cells whose every stage is in the cache (the memo's probing: nothing is
    computed; the datasets are loaded)."""
    runner = launch.open(need_output=False)
    runner.memo.probing = True
    hits = set()
    try:
        for cell in launch.cells:
            try:
                record = run_cell(runner, cell)
            except NotCached:
                continue
            if record.ok:  # a cell that fails at once (its dataset cannot load) is no hit
                hits.add(cell.key)
    finally:
        runner.memo.probing = False
    return hits


def preview(launch: Launch) -> Plan:
    """The plan of ``launch``: its cells, which are cached, and the estimated cost of the rest."""
    cached = cached_cells(launch)
    est, _ = launch.estimate(cached)
    return Plan(launch.suite.name, launch.cells, frozenset(cached), est, launch.jobs, str(launch.device),
                launch.where(), str(launch.cache), tuple(launch.planner.skipped.values()))
