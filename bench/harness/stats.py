"""Summaries of latencies: the one percentile every benchmark uses, and the n/p50/p95/max row of a list."""

from __future__ import annotations

import math
import statistics


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]); NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def latency_row(values: list[float]) -> dict:
    """``{"n", "p50", "p95", "max"}`` of ``values`` (seconds); ``{"n": 0}`` for none."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": statistics.median(values), "p95": percentile(values, 0.95), "max": max(values)}
