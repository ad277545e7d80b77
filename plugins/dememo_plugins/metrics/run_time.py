"""``run-time``: the cost of unlearning relative to retraining (RTE), as reported by SalUn (Fan et al., ICLR
2024, Table 1 "RTE") and most unlearning benchmarks.

RTE = unlearning time ÷ time of retraining from scratch on the retain set, both measured by the harness on
the same device and seed (the retrain is the paired reference model of the cell). Times are the stages'
run time when first computed, stored with them in the cache, so a cached re-run reports the same figure.
A stage that reuses a cached training (the ``retrain`` unlearner itself) or cached memorization scores
(RUM) is billed their time, so ``retrain`` reads 1.0, ``original`` 0.0, and RUM pays for its proxy. Wall-clock on a shared machine is noisy: compare ratios
from one run, not across machines.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import dememo


@attrs.define
class RunTime(dememo.Metric):
    """Unlearning run time and its ratio to retraining (RTE)."""

    name: ClassVar[str] = "run-time"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning", "interplay")
    after_model_attack: ClassVar[bool] = False
    columns: ClassVar[dict[str, dememo.Column]] = {
        "rte": dememo.Column("RTE", "lower", "unlearning time ÷ time of retraining on the retain set (same device "
                             "and seed; the paired retrain reads 1)", unit="number", wall_clock=True),
        "unlearn_seconds": dememo.Column("time", "info", "wall-clock seconds of the unlearning stage when first "
                                         "computed", unit="seconds", wall_clock=True),
    }

    def compute(self, ev, ctx):
        costs = ev.costs
        if "unlearn_seconds" not in costs or not costs.get("retrain_seconds"):
            return {"rte": float("nan"), "unlearn_seconds": float(costs.get("unlearn_seconds", float("nan")))}
        return {"rte": costs["unlearn_seconds"] / costs["retrain_seconds"], "unlearn_seconds": costs["unlearn_seconds"]}


@dememo.hookimpl
def register_metrics(register):
    register(RunTime)
