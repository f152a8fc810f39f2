"""Cost against input length: the runs of one model, row and attention at several sequence lengths, as
series with their fitted growth exponent (latency ∝ length^k: k near 2 where dense attention dominates,
near 1 for sliding windows and block-sparse attention)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.catalogue import MB, main_latency
from bench.core.records import RunRecord, Status
from bench.report.table import GroupTable

FIT_POINTS = 3
"""The exponent is fitted over this many longest lengths: growth at long inputs is what it describes."""


def growth_exponent(lengths: Sequence[float], values: Sequence[float], longest: int = FIT_POINTS) -> float | None:
    """The least-squares slope of log(value) against log(length) over the `longest` longest lengths; None
    with fewer than two distinct lengths or a non-positive value."""
    points = sorted((x, y) for x, y in zip(lengths, values, strict=True))[-longest:]
    if len({x for x, _ in points}) < 2 or any(x <= 0 or y <= 0 for x, y in points):
        return None
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


@dataclass
class Series:
    """One model/row/attention measured at several lengths, all else equal (machine, device, batch size, task
    data and measurement settings)."""

    task: str
    label: str
    generates: bool = False
    """Its latency is the time to the first generated token."""
    lengths: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    """p50 of the part of a call that reads the whole input: the forward pass, or for generation the time
    to the first token (the encoder and one decoder step; later tokens cost about the same at any length)."""
    peak_mb: list[float | None] = field(default_factory=list)
    """Peak RSS while timing."""

    def exponent(self, values: Sequence[float | None]) -> float | None:
        """The growth exponent of `values` (one per length)."""
        pairs = [(x, y) for x, y in zip(self.lengths, values, strict=True) if y is not None]
        return growth_exponent([x for x, _ in pairs], [y for _, y in pairs])


def _attention(record: RunRecord) -> str:
    execution = record.execution
    if execution is None or execution.attention is None:
        return "attention unknown"
    text = execution.attention
    pattern = execution.attention_pattern or ""
    if pattern.startswith("sliding window"):
        text += f", {pattern.split(' +')[0]}"
    elif pattern.startswith("block sparse"):
        text += ", block sparse"
    elif pattern.startswith("full ("):
        text += ", block sparse off"
    return text + (", compiled" if execution.compiled else "")


def scaling_series(tables: Sequence[GroupTable]) -> dict[str, list[Series]]:
    """By task, every series with at least two sequence lengths, in a stable order."""
    found: dict[tuple[str, str, str, str, str], Series] = {}
    for table in tables:
        for record in table.records:
            latency = record.latency.get("first_token") or main_latency(record)
            if record.status != Status.OK or latency is None:
                continue
            s = record.spec
            label = f"{s.model.display_name} · {s.compressor.display_name} · {_attention(record)}"
            if s.batch_size != 1:
                label += f" · batch {s.batch_size}"
            same = [s.task.identity(), s.measurement.conditions(), s.threads]
            conditions = json.dumps(same, sort_keys=True, default=str)
            key = (record.machine, s.task.name, str(s.device), conditions, label)
            series = found.setdefault(key, Series(s.task.name, label, "first_token" in record.latency))
            peak = record.memory.phase_peaks.get("latency") if record.memory else None
            series.lengths.append(s.sequence_length)
            series.latency_ms.append(latency.stats.p50)
            series.peak_mb.append(peak / MB if peak else None)
    by_task: dict[str, list[Series]] = {}
    for key in sorted(found):
        series = found[key]
        if len(set(series.lengths)) < 2:
            continue
        order = sorted(range(len(series.lengths)), key=lambda i: series.lengths[i])
        series.lengths = [series.lengths[i] for i in order]
        series.latency_ms = [series.latency_ms[i] for i in order]
        series.peak_mb = [series.peak_mb[i] for i in order]
        by_task.setdefault(series.task, []).append(series)
    return by_task


def task_generates(series: Sequence[Series]) -> bool:
    """Whether the series' latencies are times to the first token."""
    return any(s.generates for s in series)


def exponent_text(value: float | None) -> str:
    """An exponent as the legend and tables show it."""
    return "–" if value is None else f"{value:.2f}"


def scaling_rows(series: Sequence[Series]) -> list[list[str]]:
    """One row per series: label, lengths, p50 at each end, latency and memory exponents."""
    rows = []
    for s in series:
        rows.append(
            [
                s.label,
                f"{s.lengths[0]}–{s.lengths[-1]}",
                f"{s.latency_ms[0]:,.1f} → {s.latency_ms[-1]:,.1f}",
                exponent_text(s.exponent(s.latency_ms)),
                exponent_text(s.exponent(s.peak_mb)),
            ]
        )
    return rows


SCALING_HEADER = [
    "model · row · attention",
    "lengths",
    "p50 ms, shortest → longest (forward; generation: first token)",
    "latency k",
    "peak RSS k",
]
SCALING_LEGEND = (
    f"k: the slope of log(cost) against log(sequence length) over the {FIT_POINTS} longest lengths measured "
    "(cost ∝ length^k): near 2 where dense attention dominates, near 1 where the cost is linear in the "
    "length (sliding-window and block-sparse attention, or short inputs where the feed-forward layers dominate)."
)
