"""`bench compare OLD NEW`: what changed between two result sets, and a CI gate on thresholds.

Runs are matched by what they measure (suite, task, model, data, device, shapes, compressor label), not by
file name. A threshold `latency.p50:+5%` fails when the new value is more than 5% above the old one;
`accuracy.f1:-0.5` fails when it is more than 0.5 (the metric's unit) below. The sign says which way is bad.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.catalogue import known_names, lookup
from bench.errors import BenchError
from bench.records import RunRecord, Status

_THRESHOLD = re.compile(r"^(?P<metric>[A-Za-z0-9_.]+):(?P<limit>[+-]\d+(\.\d+)?)(?P<pct>%?)$")

DEFAULT_METRICS = ("latency.p50", "memory.peak", "size")


def metric_value(record: RunRecord, metric: str) -> float | None:
    """The value of a catalogue metric (`latency.p50`, `accuracy.f1`, ...) in a record, or None."""
    found = lookup(metric)
    return found.read(record) if found is not None else None


@dataclass(frozen=True)
class Threshold:
    """How far a metric may move in its bad direction (signed), in percent or in its unit."""

    metric: str
    limit: float
    relative: bool

    def crossed(self, old: float, new: float) -> bool:
        """Whether the change from old to new goes past the limit in the limit's direction."""
        change = 100.0 * (new - old) / abs(old) if self.relative else new - old
        if self.relative and old == 0:
            change = 0.0 if new == old else math.copysign(math.inf, new - old)
        return change > self.limit if self.limit >= 0 else change < self.limit

    def __str__(self) -> str:
        return f"{self.metric}:{self.limit:+g}{'%' if self.relative else ''}"


def parse_threshold(text: str) -> Threshold:
    """`latency.p50:+5%` or `accuracy.f1:-0.5`, or a BenchError saying what is wrong."""
    match = _THRESHOLD.match(text.strip())
    if not match:
        raise BenchError(
            f"--fail-on {text!r}: expected METRIC:+N% or METRIC:-N, e.g. latency.p50:+5% or accuracy.f1:-0.5"
        )
    found = lookup(match["metric"])
    if found is None:
        raise BenchError(f"--fail-on {text!r}: unknown metric '{match['metric']}'; use {known_names()}")
    return Threshold(found.name, float(match["limit"]), bool(match["pct"]))


def identity(r: RunRecord) -> tuple[str, ...]:
    """What a run measures, independent of where and when it ran."""
    s = r.spec
    return (
        s.suite,
        s.task.name,
        s.model.display_name,
        Path(s.task.dataset).name,
        s.task.split,
        str(s.task.limit),
        s.device,
        str(s.batch_size),
        str(s.sequence_length),
        s.compressor.display_name,
    )


@dataclass
class Change:
    """One metric of one matched run."""

    run: str
    metric: str
    old: float | None
    new: float | None
    crossed: Threshold | None = None

    @property
    def percent(self) -> float | None:
        """Relative change, or None."""
        if self.old is None or self.new is None or self.old == 0:
            return None
        return 100.0 * (self.new - self.old) / abs(self.old)


@dataclass
class Comparison:
    """Changes between two result sets, and the thresholds they crossed."""

    changes: list[Change] = field(default_factory=list)
    status_changes: list[str] = field(default_factory=list)
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        """Every crossed threshold and every run that stopped succeeding, as lines."""
        lines = [
            f"{c.run}: {c.metric} {c.old:.4g} → {c.new:.4g} crosses {c.crossed}" for c in self.changes if c.crossed
        ]
        return lines + self.status_changes


def _label(r: RunRecord) -> str:
    s = r.spec
    where = f"{s.task.name}, {s.model.display_name}, {s.device}, bs{s.batch_size}, seq{s.sequence_length}"
    return f"{s.compressor.display_name} [{where}]"


def _index(records: Sequence[RunRecord]) -> dict[tuple[str, ...], RunRecord]:
    found: dict[tuple[str, ...], RunRecord] = {}
    for r in sorted(records, key=lambda r: r.finished_at):  # the latest measurement of a run wins
        found[identity(r)] = r
    return found


def compare(old: Sequence[RunRecord], new: Sequence[RunRecord], thresholds: Sequence[Threshold]) -> Comparison:
    """Match runs and compute the changes of the thresholds' metrics (or the default ones)."""
    before, after = _index(old), _index(new)
    result = Comparison(
        only_old=sorted(_label(before[k]) for k in before.keys() - after.keys()),
        only_new=sorted(_label(after[k]) for k in after.keys() - before.keys()),
    )
    machines = {r.machine for r in old} | {r.machine for r in new}
    if len(machines) > 1:
        result.warnings.append(f"the records come from several machines ({', '.join(sorted(machines))})")
    metrics = list(dict.fromkeys([t.metric for t in thresholds] or DEFAULT_METRICS))
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        run = _label(b)
        if a.status == Status.OK and b.status != Status.OK:
            reason = f": {b.error.message}" if b.error else ""
            result.status_changes.append(f"{run}: was ok, now {b.status.value}{reason}")
            continue
        if a.status != Status.OK or b.status != Status.OK:
            continue
        for metric in metrics:
            change = Change(run, metric, metric_value(a, metric), metric_value(b, metric))
            if change.old is not None and change.new is not None:
                change.crossed = next(
                    (t for t in thresholds if t.metric == metric and t.crossed(change.old, change.new)), None
                )
            result.changes.append(change)
    if not before.keys() & after.keys():
        raise BenchError(
            "no run of OLD matches a run of NEW (same suite, task, model, data, device, shapes, compressor)"
        )
    return result
