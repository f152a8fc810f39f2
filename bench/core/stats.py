"""Summary statistics of raw samples. Pure Python on purpose: reports use it without numpy or torch."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel


class SampleStats(BaseModel):
    """Summary of a list of samples, in the samples' unit."""

    n: int
    mean: float
    stdev: float
    cv_percent: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Percentile by linear interpolation between closest ranks (numpy's default, 'linear').

    `sorted_values` must be sorted ascending and non-empty; `q` is in [0, 100].
    """
    if not sorted_values:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} outside [0, 100]")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(sorted_values[lo])
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def summarize(samples: Sequence[float]) -> SampleStats:
    """Mean, sample standard deviation (n-1), CV% and percentiles of `samples`."""
    if not samples:
        raise ValueError("cannot summarize an empty sample list")
    values = sorted(float(v) for v in samples)
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    stdev = math.sqrt(var)
    return SampleStats(
        n=n,
        mean=mean,
        stdev=stdev,
        cv_percent=(100.0 * stdev / mean) if mean else 0.0,
        min=values[0],
        max=values[-1],
        p50=percentile(values, 50),
        p90=percentile(values, 90),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
    )
