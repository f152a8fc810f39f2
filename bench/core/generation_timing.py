"""Generation latency: whole-call time, time to the first new token (encoder + first decoder step),
and time per new token after it, for calls that produce a fixed number of new tokens.

The core is pure: `generate(x, on_token)` must call `on_token()` once per decoding step, after the
step's token is chosen; the clock stamps those calls. Every call must produce exactly `new_tokens`
tokens per sequence, so that every compressor is timed on the same work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from bench.core.latency import (
    DeviceTimer,
    LatencyResult,
    LatencySettings,
    latency_result,
    time_calls,
    with_device_samples,
)
from bench.core.shape import Shape

T = TypeVar("T")
OnToken = Callable[[], None]


class WrongOutputLength(RuntimeError):
    """A timed call produced another number of new tokens than asked (the work was not fixed)."""


@dataclass
class _Stamps:
    start: int = 0
    tokens: list[int] = field(default_factory=list)


@dataclass
class GenerationTiming:
    """Whole-call, first-token and per-token latency of fixed-length generation."""

    generate: LatencyResult
    first_token: LatencyResult
    per_token: LatencyResult

    def as_dict(self) -> dict[str, LatencyResult]:
        """The results by name, as stored in a record's `latency`."""
        return {"generate": self.generate, "first_token": self.first_token, "per_token": self.per_token}


def time_generation(
    generate: Callable[[T, OnToken], int],
    inputs: Sequence[T],
    settings: LatencySettings,
    new_tokens: int,
    shape: Shape,
    synchronize: Callable[[], None] = lambda: None,
    clock: Callable[[], int] = time.perf_counter_ns,
    device_timer: DeviceTimer | None = None,
) -> GenerationTiming:
    """Time `generate` (which returns the number of new tokens it produced per sequence); a `device_timer`
    cross-checks the whole calls."""
    if new_tokens < 2:
        raise ValueError("per-token latency needs at least 2 new tokens")
    calls: list[_Stamps] = []

    def on_token() -> None:
        synchronize()
        calls[-1].tokens.append(clock())

    def call(x: T) -> None:
        calls.append(_Stamps(start=clock()))
        produced = generate(x, on_token)
        steps = len(calls[-1].tokens)
        if produced != new_tokens or steps != new_tokens:
            raise WrongOutputLength(
                f"asked for exactly {new_tokens} new tokens; the model produced {produced} in {steps} steps"
            )

    on_device: list[float] = []
    cold_ms, samples, measured_s = time_calls(call, inputs, settings, synchronize, clock, device_timer, on_device)
    timed = calls[-len(samples) :]
    first = [(c.tokens[0] - c.start) / 1e6 for c in timed]
    per_token = [(c.tokens[-1] - c.tokens[0]) / 1e6 / (new_tokens - 1) for c in timed]
    cold = calls[0]

    def result(values: list[float], cold_value: float, scope: str) -> LatencyResult:
        return latency_result(values, cold_value, measured_s, settings, shape, len(inputs), scope)

    whole = with_device_samples(
        result(samples, cold_ms, f"generate exactly {new_tokens} new tokens (whole call), device synchronized"),
        on_device,
    )
    whole.tokens_per_s = 1000.0 * shape.batch_size * new_tokens / whole.stats.mean if whole.stats.mean > 0 else 0.0
    return GenerationTiming(
        generate=whole,
        first_token=result(first, (cold.tokens[0] - cold.start) / 1e6, "time to the first new token (prefill)"),
        per_token=result(
            per_token,
            (cold.tokens[-1] - cold.tokens[0]) / 1e6 / (new_tokens - 1),
            "time per new token after the first",
        ),
    )
