"""Steady-state latency: a cold call, warm-up calls, then timed calls until enough samples AND time.

The core loop is pure: it takes a callable, the inputs, a synchronize function and a clock, so it is
tested with fakes and used unchanged for every runtime and device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from bench.measure.stats import SampleStats, summarize
from bench.shape import Shape

T = TypeVar("T")


@dataclass(frozen=True)
class LatencySettings:
    """How long to measure: stop after min_iterations AND min_duration_s, or at either maximum."""

    warmup: int
    min_iterations: int
    min_duration_s: float
    max_iterations: int
    max_duration_s: float
    timed_region: Callable[[], AbstractContextManager[object]] = nullcontext
    """Entered around the timed calls only (after the cold call and warm-up): a run watches what happens
    while it is timed (torch.compile recompiling) with it."""


class LatencyResult(BaseModel):
    """Raw per-call samples and their summary. All times in milliseconds."""

    unit: str = "ms"
    scope: str
    """What one sample covers, e.g. 'model forward on tokenized inputs, device synchronized'."""
    shape: Shape
    cold_ms: float
    warmup_calls: int
    samples_ms: list[float]
    distinct_inputs: int
    measured_s: float
    stats: SampleStats
    throughput_samples_per_s: float
    tokens_per_s: float | None = None
    """Generation: output tokens per second over the whole call (batch size x new tokens / mean)."""
    real_tokens_per_input: float | None = None
    """Mean non-padding tokens per timed input (its attention mask); below the sequence length means the
    calls timed padding too."""
    other_cpu_share: float | None = None
    """Share of the machine's CPU time that other processes used while timing (0..1); high means unreliable."""


def time_calls(
    call: Callable[[T], Any],
    inputs: Sequence[T],
    settings: LatencySettings,
    synchronize: Callable[[], None] = lambda: None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> tuple[float, list[float], float]:
    """Return (cold call ms, steady-state samples in ms, measured seconds).

    Inputs are used in rotation so that the samples see varied real data.
    """
    if not inputs:
        raise ValueError("no inputs to time")

    def timed(x: T) -> float:
        synchronize()
        start = clock()
        call(x)
        synchronize()
        return (clock() - start) / 1e6

    cold_ms = timed(inputs[0])
    for i in range(settings.warmup):
        call(inputs[(i + 1) % len(inputs)])
    synchronize()
    samples: list[float] = []
    with settings.timed_region():
        began = clock()
        i = settings.warmup + 1
        while True:
            samples.append(timed(inputs[i % len(inputs)]))
            i += 1
            elapsed = (clock() - began) / 1e9
            enough = len(samples) >= settings.min_iterations and elapsed >= settings.min_duration_s
            if enough or len(samples) >= settings.max_iterations or elapsed >= settings.max_duration_s:
                return cold_ms, samples, elapsed


def latency_result(
    samples: list[float],
    cold_ms: float,
    measured_s: float,
    settings: LatencySettings,
    shape: Shape,
    distinct_inputs: int,
    scope: str,
) -> LatencyResult:
    """Summarize raw samples (ms) into a LatencyResult."""
    stats = summarize(samples)
    return LatencyResult(
        scope=scope,
        shape=shape,
        cold_ms=cold_ms,
        warmup_calls=settings.warmup,
        samples_ms=samples,
        distinct_inputs=distinct_inputs,
        measured_s=measured_s,
        stats=stats,
        throughput_samples_per_s=1000.0 * shape.batch_size / stats.mean if stats.mean > 0 else 0.0,
    )


def measure_latency(
    call: Callable[[T], Any],
    inputs: Sequence[T],
    settings: LatencySettings,
    shape: Shape,
    scope: str,
    synchronize: Callable[[], None] = lambda: None,
) -> LatencyResult:
    """Time `call` over `inputs` and summarize."""
    cold_ms, samples, measured_s = time_calls(call, inputs, settings, synchronize)
    return latency_result(samples, cold_ms, measured_s, settings, shape, len(inputs), scope)
