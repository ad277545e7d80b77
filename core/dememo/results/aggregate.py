"""The one aggregation over seeds: every table, CSV row, curve point and heat-map cell is the mean and
sample standard deviation of the seeds' defined values (None and NaN are left out, never counted as 0)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any, NamedTuple

from dememo.numbers import finite


class Stats(NamedTuple):
    """Mean and sample standard deviation (0 for one value) over ``n`` defined values; None when n is 0."""

    mean: float | None
    std: float | None
    n: int


def stats(values: Iterable[Any]) -> Stats:
    vals = [f for v in values if (f := finite(v)) is not None]
    if not vals:
        return Stats(None, None, 0)
    try:
        return Stats(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals))
    except OverflowError:  # values near the float limit: their sum overflows; computed on [-1, 1] instead
        scale = max(abs(v) for v in vals)
        unit = [v / scale for v in vals]
        return Stats(statistics.fmean(unit) * scale, statistics.stdev(unit) * scale if len(vals) > 1 else 0.0, len(vals))
