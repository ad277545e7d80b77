"""The one test of "a finite number" for values read from JSON (results, bundles, leaderboards)."""

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
