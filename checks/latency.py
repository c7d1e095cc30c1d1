"""Summaries of timings: the percentiles every check reports in milliseconds."""
from __future__ import annotations

import math


def percentile(values, pct: float) -> float | None:
    """The `pct` percentile of `values` by the nearest-rank method, or None when empty.

    Nearest rank keeps the figure one that was actually observed, which is what an operator
    expects when they read "p95 = 41 ms" next to a list of samples.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize_ms(samples_ms) -> dict:
    """count, p50_ms, p95_ms, p99_ms, max_ms, mean_ms of a list of millisecond timings."""
    samples = list(samples_ms)
    if not samples:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None,
                "mean_ms": None}
    return {
        "count": len(samples),
        "p50_ms": round(percentile(samples, 50), 3),
        "p95_ms": round(percentile(samples, 95), 3),
        "p99_ms": round(percentile(samples, 99), 3),
        "max_ms": round(max(samples), 3),
        "mean_ms": round(sum(samples) / len(samples), 3),
    }
