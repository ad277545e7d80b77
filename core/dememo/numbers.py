"""Numbers read from and written to JSON (results, bundles, leaderboards): the one test of "a finite number", and
NaN and infinities written as null."""

from __future__ import annotations

import math
from typing import Any


def finite(v: Any) -> float | None:
    """``v`` as a finite float; None for null, NaN, ±inf, booleans, non-numbers and integers beyond the
    float range (JSON integers are unbounded)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def clean_number(value: Any) -> Any:
    """JSON has no NaN/Inf: write them as null (the leaderboard shows 'n/a')."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_number(v) for v in value]
    return value
