"""One catalogue of the figures bench reports: how to read each from a record, its title, unit, which
direction is better, how a change is shown and how many digits. Tables, CSV, `compare`, the run summary
and threshold gates all read it, so a figure is named, ordered and judged the same way everywhere.

Task metrics come from each record (`accuracy.NAME`, `agreement.NAME`, with their own direction); the
fixed figures are listed in FIXED. Each has a CLI name (`latency.p50`) and a short column key (`lat.p50`,
the CSV header); both are accepted wherever a metric is named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bench.core.latency import LatencyResult
from bench.core.records import RunRecord
from bench.core.serving import same_rounds
from bench.report.bootstrap import Interval, latency_change

MB = 1024 * 1024

Delta = Literal["abs", "rel"]


@dataclass(frozen=True)
class Metric:
    """A reported figure."""

    name: str
    """The name users write (`bench compare --fail-on latency.p50:+5%`)."""
    key: str
    """The column key in tables and CSV files."""
    title: str
    read: Callable[[RunRecord], float | None]
    higher_is_better: bool | None
    """None: no better direction (a length, a spread)."""
    delta: Delta | None = None
    """How a change against the baseline is shown: 'abs' (difference in the unit), 'rel' (percent)."""
    digits: int = 2
    unit: str = ""
    in_table: bool = True
    in_summary: bool = True
    """Shown in the console summary at the end of `bench run`."""
    in_export: bool = True
    """A column of the flat export (CSV, Parquet), even when the tables leave it out."""
    spread: tuple[str, str] | None = None
    """Where its noise is known: (latency part, statistic of the raw samples), e.g. ("main", "p50"); the
    part "main" is the run's main latency. `compare` bootstraps the change from those samples."""

    def timing(self, record: RunRecord) -> LatencyResult | None:
        """The latency part this figure is a statistic of (with raw samples), or None."""
        if self.spread is None:
            return None
        part = main_latency(record) if self.spread[0] == "main" else record.latency.get(self.spread[0])
        return part if part is not None and part.samples_ms else None

    def samples(self, record: RunRecord) -> list[float] | None:
        """The raw latency samples this figure is a statistic of, or None."""
        part = self.timing(record)
        return part.samples_ms if part is not None else None

    def change(self, base: RunRecord, new: RunRecord) -> Interval | None:
        """The bootstrap interval of this figure's change from `base` to `new` (paired by round when the two
        were timed in the same interleaved rounds), or None without raw samples."""
        a, b = self.timing(base), self.timing(new)
        if self.spread is None or a is None or b is None:
            return None
        return latency_change(a, b, self.spread[1], same_rounds(base.interleaving, new.interleaving))


def main_latency(record: RunRecord) -> LatencyResult | None:
    """The latency a table reports for a run: the forward pass, or the whole generate call."""
    return record.latency.get("forward") or record.latency.get("generate") or next(iter(record.latency.values()), None)


def _stat(stat: str) -> Callable[[RunRecord], float | None]:
    def read(r: RunRecord) -> float | None:
        lat = main_latency(r)
        return float(getattr(lat.stats, stat)) if lat is not None else None

    return read


def _part_p50(part: str) -> Callable[[RunRecord], float | None]:
    return lambda r: r.latency[part].stats.p50 if part in r.latency else None


def _tokens_per_s(r: RunRecord) -> float | None:
    generate = r.latency.get("generate")
    return generate.tokens_per_s if generate is not None else None


def _throughput(r: RunRecord) -> float | None:
    lat = main_latency(r)
    return lat.throughput_samples_per_s if lat is not None else None


def _phase_mb(phase: str) -> Callable[[RunRecord], float | None]:
    """A phase's peak resident memory: the serving process's where the run was served from its saved files
    (what a deployment needs), else the compressing process's."""
    served = {"latency": "timing_peak", "evaluate": "scoring_peak"}[phase]

    def read(r: RunRecord) -> float | None:
        if r.serving is not None and r.serving.where == "fresh process":
            value = getattr(r.serving, served)
            return value / MB if value else None
        peak = r.memory.phase_peaks.get(phase) if r.memory else None
        return peak / MB if peak else None

    return read


def _serving_mb(figure: str) -> Callable[[RunRecord], float | None]:
    """A serving process's memory figure (`rss_runtime`: after the runtime's imports; `model_bytes`: what
    loading the model added)."""

    def read(r: RunRecord) -> float | None:
        value = getattr(r.serving, figure) if r.serving is not None else None
        return value / MB if value else None

    return read


def _load_s(r: RunRecord) -> float | None:
    return r.serving.load_s if r.serving is not None else None


def _gpu_mb(phase: str, figure: str) -> Callable[[RunRecord], float | None]:
    """A CUDA run's GPU memory in a phase: `allocated` (its tensors' peak) or `used` (the whole device)."""

    def read(r: RunRecord) -> float | None:
        gpu = r.memory.device if r.memory else None
        part = gpu.phases.get(phase) if gpu else None
        if part is None:
            return None
        value = part.allocated_peak if figure == "allocated" else part.device_used
        return value / MB if value is not None else None

    return read


def _load_mb(r: RunRecord) -> float | None:
    return r.memory.load_peak / MB if r.memory and r.memory.load_peak else None


def _size_mb(r: RunRecord) -> float | None:
    return r.size.saved.bytes / MB if r.size and r.size.saved else None


def _zip_mb(r: RunRecord) -> float | None:
    return r.size.saved.zip_bytes / MB if r.size and r.size.saved else None


def _params_m(r: RunRecord) -> float | None:
    return r.size.census_after.parameters / 1e6 if r.size and r.size.census_after else None


def _sparsity(r: RunRecord) -> float | None:
    return 100 * r.size.census_after.sparsity if r.size and r.size.census_after else None


def _compile_s(r: RunRecord) -> float | None:
    return r.execution.compile_s if r.execution else None


FIXED: tuple[Metric, ...] = (
    Metric("latency.p50", "lat.p50", "p50 ms", _stat("p50"), False, "rel", unit="ms", spread=("main", "p50")),
    Metric(
        "latency.p90", "lat.p90", "p90 ms", _stat("p90"), False, unit="ms", in_summary=False, spread=("main", "p90")
    ),
    Metric("latency.p99", "lat.p99", "p99 ms", _stat("p99"), False, unit="ms", spread=("main", "p99")),
    Metric("latency.cv", "lat.cv", "CV %", _stat("cv_percent"), None, digits=1, unit="%", in_summary=False),
    Metric("latency.n", "lat.n", "samples", _stat("n"), None, digits=0, in_table=False, in_summary=False),
    Metric(
        "latency.mean",
        "lat.mean",
        "mean ms",
        _stat("mean"),
        False,
        unit="ms",
        in_table=False,
        in_summary=False,
        in_export=False,
        spread=("main", "mean"),
    ),
    Metric(
        "throughput",
        "throughput",
        "samples/s",
        _throughput,
        True,
        "rel",
        1,
        "1/s",
        in_summary=False,
        spread=("main", "rate"),
    ),
    Metric(
        "latency.first_token",
        "ttft.p50",
        "first token ms",
        _part_p50("first_token"),
        False,
        "rel",
        unit="ms",
        spread=("first_token", "p50"),
    ),
    Metric(
        "latency.per_token",
        "per_token.p50",
        "per token ms",
        _part_p50("per_token"),
        False,
        "rel",
        unit="ms",
        spread=("per_token", "p50"),
    ),
    Metric(
        "tokens_per_s", "tokens_per_s", "tokens/s", _tokens_per_s, True, "rel", 1, "1/s", spread=("generate", "rate")
    ),
    Metric("memory.peak", "mem.latency", "peak RSS MB", _phase_mb("latency"), False, "rel", 0, "MB"),
    Metric("memory.runtime", "mem.runtime", "runtime RSS MB", _serving_mb("rss_runtime"), False, None, 0, "MB"),
    Metric(
        "memory.model",
        "mem.model",
        "model RSS MB",
        _serving_mb("model_bytes"),
        False,
        "rel",
        0,
        "MB",
        in_table=False,
        in_summary=False,
    ),
    Metric("load_s", "load.s", "load s", _load_s, False, None, 2, "s", in_table=False, in_summary=False),
    Metric("memory.evaluate", "mem.eval", "eval RSS MB", _phase_mb("evaluate"), False, None, 0, "MB", in_summary=False),
    Metric("gpu_memory.peak", "gpu.latency", "GPU alloc MB", _gpu_mb("latency", "allocated"), False, "rel", 0, "MB"),
    Metric(
        "gpu_memory.device",
        "gpu.used",
        "GPU used MB",
        _gpu_mb("latency", "used"),
        False,
        None,
        0,
        "MB",
        in_summary=False,
    ),
    Metric(
        "gpu_memory.evaluate",
        "gpu.eval",
        "eval GPU alloc MB",
        _gpu_mb("evaluate", "allocated"),
        False,
        None,
        0,
        "MB",
        in_table=False,
        in_summary=False,
    ),
    Metric("memory.load", "mem.load", "load RSS MB", _load_mb, False, None, 0, "MB", in_table=False, in_summary=False),
    Metric("size", "size.mb", "size MB", _size_mb, False, "rel", 1, "MB"),
    Metric("size.zipped", "size.zip", "zipped MB", _zip_mb, False, None, 1, "MB", in_summary=False),
    Metric("parameters", "params.m", "params M", _params_m, False, None, 2, "M", in_summary=False),
    Metric("sparsity", "sparsity", "sparsity %", _sparsity, None, None, 1, "%", in_summary=False),
    Metric("compile_time", "compile.s", "compile s", _compile_s, False, None, 1, "s", in_summary=False),
)
"""In table order (after the task's accuracy and agreement columns)."""

# Table column order: the order of FIXED, except throughput after the generation figures.
TABLE_ORDER = (
    "lat.p50",
    "lat.p90",
    "lat.p99",
    "lat.cv",
    "ttft.p50",
    "per_token.p50",
    "tokens_per_s",
    "throughput",
    "mem.latency",
    "mem.eval",
    "mem.runtime",
    "gpu.latency",
    "gpu.used",
    "size.mb",
    "size.zip",
    "params.m",
    "sparsity",
    "compile.s",
)
BY_NAME = {m.name: m for m in FIXED} | {m.key: m for m in FIXED}

# Figures kept in records but left out of tables: constant per group, or one of several agreement scores.
TABLE_HIDDEN = frozenset(
    {"reference_words", "rouge1_agreement", "rouge2_agreement", "rougeLsum_agreement", "f1_agreement"}
)
SUMMARY_HIDDEN = frozenset({"output_words"})
"""Task metrics also left out of the console summary."""


def task_metric(kind: Literal["accuracy", "agreement"], name: str, higher: bool | None) -> Metric:
    """The catalogue entry of a task's accuracy or agreement metric."""
    prefix = "acc" if kind == "accuracy" else "agree"

    def read(r: RunRecord) -> float | None:
        source = r.accuracy if kind == "accuracy" else r.agreement
        metric = source.metrics.get(name) if source is not None else None
        return metric.value if metric is not None else None

    return Metric(
        name=f"{kind}.{name}",
        key=f"{prefix}.{name}",
        title=name.replace("_", " "),
        read=read,
        higher_is_better=higher if kind == "accuracy" else True,
        delta="abs" if kind == "accuracy" else None,
        in_table=name not in TABLE_HIDDEN,
        in_summary=name not in TABLE_HIDDEN and name not in SUMMARY_HIDDEN,
    )


def lookup(name: str) -> Metric | None:
    """The metric a user named (`latency.p50`, `lat.p50`, `accuracy.f1`, `agree.exact_agreement`), or None."""
    if name in BY_NAME:
        return BY_NAME[name]
    kind, _, metric = name.partition(".")
    aliases: dict[str, Literal["accuracy", "agreement"]] = {
        "accuracy": "accuracy",
        "acc": "accuracy",
        "agreement": "agreement",
        "agree": "agreement",
    }
    if kind in aliases and metric:
        return task_metric(aliases[kind], metric, True)
    return None


def known_names() -> str:
    """The metric names for error messages."""
    return ", ".join(m.name for m in FIXED) + ", accuracy.NAME, agreement.NAME"
