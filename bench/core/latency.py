"""Steady-state latency: a cold call, warm-up calls, then timed calls until enough samples AND time.

The core loop is pure: it takes a callable, the inputs, a synchronize function and a clock, so it is
tested with fakes and used unchanged for every runtime and device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pydantic import BaseModel

from bench.core.shape import Shape
from bench.core.stats import SampleStats, summarize

T = TypeVar("T")


class DeviceTimer(Protocol):
    """Times one call on the device itself (CUDA events), as a cross-check of the synchronized wall clock."""

    def begin(self) -> None:
        """Mark the call's start in the device's queue."""

    def end(self) -> None:
        """Mark the call's end in the device's queue (before the host synchronizes)."""

    def elapsed_ms(self) -> float:
        """Device time between the marks, once the device has synchronized."""


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
    device_samples_ms: list[float] | None = None
    """CUDA runs: the same timed calls measured by CUDA events on the device (a cross-check of samples_ms,
    which also covers host-side launch overhead)."""
    device_p50_ms: float | None = None
    real_tokens_per_input: float | None = None
    """Mean non-padding tokens per timed input (its attention mask); below the sequence length means the
    calls timed padding too."""
    other_cpu_share: float | None = None
    """Share of the machine's CPU time that other processes used while timing (0..1); high means unreliable."""
    graphs_compiled: int | None = None
    """torch.compile'd models timed in a serving process: graphs built during the timed calls (recompilation
    inside the samples when above 0); None for other models."""
    rounds_ms: list[list[float]] | None = None
    """Timed in interleaved rounds: each round's samples, in round order (`samples_ms` is their
    concatenation; the record's `interleaving` says with which rows)."""


def time_calls(
    call: Callable[[T], object],
    inputs: Sequence[T],
    settings: LatencySettings,
    synchronize: Callable[[], None] = lambda: None,
    clock: Callable[[], int] = time.perf_counter_ns,
    device_timer: DeviceTimer | None = None,
    device_samples: list[float] | None = None,
) -> tuple[float, list[float], float]:
    """Return (cold call ms, steady-state samples in ms, measured seconds).

    Inputs are used in rotation so that the samples see varied real data. With a `device_timer`, each
    timed call's device time is appended to `device_samples`.
    """
    if not inputs:
        raise ValueError("no inputs to time")

    def timed(x: T, on_device: list[float] | None = None) -> float:
        synchronize()
        start = clock()
        if on_device is not None and device_timer is not None:
            device_timer.begin()
            call(x)
            device_timer.end()
        else:
            call(x)
        synchronize()
        wall = (clock() - start) / 1e6
        if on_device is not None and device_timer is not None:
            on_device.append(device_timer.elapsed_ms())
        return wall

    cold_ms = timed(inputs[0])
    for i in range(settings.warmup):
        call(inputs[(i + 1) % len(inputs)])
    synchronize()
    samples: list[float] = []
    with settings.timed_region():
        began = clock()
        i = settings.warmup + 1
        while True:
            samples.append(timed(inputs[i % len(inputs)], device_samples))
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
    call: Callable[[T], object],
    inputs: Sequence[T],
    settings: LatencySettings,
    shape: Shape,
    scope: str,
    synchronize: Callable[[], None] = lambda: None,
    device_timer: DeviceTimer | None = None,
) -> LatencyResult:
    """Time `call` over `inputs` and summarize (with the device's own timings when a timer is given)."""
    on_device: list[float] = []
    cold_ms, samples, measured_s = time_calls(
        call, inputs, settings, synchronize, device_timer=device_timer, device_samples=on_device
    )
    result = latency_result(samples, cold_ms, measured_s, settings, shape, len(inputs), scope)
    return with_device_samples(result, on_device)


def with_device_samples(result: LatencyResult, on_device: list[float]) -> LatencyResult:
    """`result` with the device's timings of the same calls (unchanged when there are none)."""
    if not on_device:
        return result
    return result.model_copy(update={"device_samples_ms": on_device, "device_p50_ms": summarize(on_device).p50})


class CudaEventTimer:
    """`DeviceTimer` over a pair of CUDA events on the current stream."""

    def __init__(self) -> None:
        import torch

        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def begin(self) -> None:
        self._start.record()

    def end(self) -> None:
        self._end.record()

    def elapsed_ms(self) -> float:
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))
