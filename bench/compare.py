"""`bench compare OLD NEW`: what changed between two result sets, and a CI gate on thresholds.

Runs are matched by what they measure (suite, task, model, data, device, shapes, compressor label), not by
file name. Two matched runs are comparable only when everything that shapes their figures is the same
(see `conditions`); otherwise the gate is refused unless mismatches are allowed.

A threshold `latency.p50:+5%` is crossed when the new value is more than 5% above the old one;
`accuracy.f1:-0.5` when it is more than 0.5 (the metric's unit) below. The sign says which way is bad.
A crossed threshold fails the gate only when the change is outside the noise: where the records hold
what it takes (the raw latency samples; the per-example predictions of accuracy metrics), a 95% bootstrap
interval of the change is computed, and a change whose interval contains zero is reported as "within
noise" instead. Figures without such data (memory, size, agreement) are judged on their values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.catalogue import Metric, known_names, lookup
from bench.core.errors import BenchError
from bench.core.records import RunRecord, Status
from bench.report.bootstrap import Interval, accuracy_delta

_THRESHOLD = re.compile(r"^(?P<metric>[A-Za-z0-9_.]+):(?P<limit>[+-]\d+(\.\d+)?)(?P<pct>%?)$")
DEFAULT_METRICS = ("latency.p50", "memory.peak", "gpu_memory.peak", "size")
"""Compared when no threshold names a metric (a figure neither run has, such as GPU memory on CPU, is left out)."""

Predictions = Callable[[RunRecord], "Sequence[Mapping[str, object]] | None"]


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
            f"--fail-on {text[:80]!r}: expected METRIC:+N% or METRIC:-N, e.g. latency.p50:+5% or accuracy.f1:-0.5"
        )
    found = lookup(match["metric"])
    if found is None:
        raise BenchError(f"--fail-on {text[:80]!r}: unknown metric '{match['metric']}'; use {known_names()}")
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
        str(s.task.limit) if not s.task.offset else f"{s.task.offset}+{s.task.limit}",
        s.device,
        str(s.batch_size),
        str(s.sequence_length),
        s.compressor.display_name,
    )


def conditions(r: RunRecord) -> dict[str, str]:
    """Everything besides the identity that shapes a run's figures: two runs are comparable only when
    these agree (the plugins' versions and bench's own may differ: that is what a gate tests)."""
    s = r.spec
    env = r.environment
    hardware = (
        f"{env.cpu_model}, {env.logical_cores} logical cores"
        + "".join(f", {g.name}" for g in env.gpus)
        + f", {env.ram_bytes // 2**30} GiB"
        if env is not None
        else "unknown"
    )
    return {
        "mode": "quick" if s.quick else "full",
        "measurement": json.dumps(s.measurement.conditions(), sort_keys=True),
        "threads": str(s.threads),
        "seed": str(s.seed),
        "model": json.dumps(
            {**s.model.model_dump(exclude={"label"}), "hub": not s.model_source.local, "weights": r.weights},
            sort_keys=True,
        ),
        "task": json.dumps({**s.task.identity(), "limit": None, "dataset": Path(s.task.dataset).name}, sort_keys=True),
        "compressor": json.dumps(s.compressor.model_dump(exclude={"label"}), sort_keys=True),
        "hardware": hardware,
    }


@dataclass
class Change:
    """One metric of one matched run."""

    run: str
    metric: str
    old: float | None
    new: float | None
    interval: Interval | None = None
    """Bootstrap interval of the change (latency: percent; accuracy: points), where the records allow one."""
    crossed: Threshold | None = None
    """The threshold crossed outside the noise: a failure."""
    within_noise: Threshold | None = None
    """The threshold the values cross, while the change's interval contains zero."""

    @property
    def percent(self) -> float | None:
        """Relative change, or None."""
        if self.old is None or self.new is None or self.old == 0:
            return None
        return 100.0 * (self.new - self.old) / abs(self.old)


@dataclass
class Comparison:
    """Changes between two result sets, the thresholds they crossed, and why runs could not be compared."""

    changes: list[Change] = field(default_factory=list)
    status_changes: list[str] = field(default_factory=list)
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    """One line per matched run whose conditions differ: not like with like."""
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        """Every threshold crossed outside the noise and every run that stopped succeeding, as lines."""
        lines = [
            f"{c.run}: {c.metric} {c.old:.4g} → {c.new:.4g} crosses {c.crossed}{_interval_text(c)}"
            for c in self.changes
            if c.crossed
        ]
        return lines + self.status_changes

    @property
    def noisy(self) -> list[str]:
        """Thresholds crossed only inside the noise, as lines."""
        return [
            f"{c.run}: {c.metric} {c.old:.4g} → {c.new:.4g} crosses {c.within_noise} within noise{_interval_text(c)}"
            for c in self.changes
            if c.within_noise
        ]

    def as_json(self, unreadable: Sequence[str], verdict: str) -> str:
        """The whole comparison for other tools."""
        payload = {
            "verdict": verdict,
            "changes": [
                {
                    **{k: v for k, v in asdict(c).items() if k not in ("interval", "crossed", "within_noise")},
                    "percent": c.percent,
                    "interval": None if c.interval is None else [c.interval.low, c.interval.high],
                    "crossed": str(c.crossed) if c.crossed else None,
                    "within_noise": str(c.within_noise) if c.within_noise else None,
                }
                for c in self.changes
            ],
            "failures": self.failed,
            "within_noise": self.noisy,
            "mismatches": self.mismatches,
            "only_old": self.only_old,
            "only_new": self.only_new,
            "unreadable": list(unreadable),
            "warnings": self.warnings,
        }
        return json.dumps(payload, indent=2, ensure_ascii=False)


def _interval_text(c: Change) -> str:
    if c.interval is None:
        return ""
    unit = "" if c.metric.startswith("accuracy.") else "%"  # accuracy: points; latency: percent
    return f" (95% interval {c.interval.low:+.2f}{unit} to {c.interval.high:+.2f}{unit})"


def _label(r: RunRecord) -> str:
    s = r.spec
    where = f"{s.task.name}, {s.model.display_name}, {s.device}, bs{s.batch_size}, seq{s.sequence_length}"
    return f"{s.compressor.display_name} [{where}]"


def _index(records: Sequence[RunRecord]) -> dict[tuple[str, ...], RunRecord]:
    found: dict[tuple[str, ...], RunRecord] = {}
    for r in sorted(records, key=lambda r: r.finished_at):  # the latest measurement of a run wins
        if not r.spec.retiming:  # repeated timings (bench tune's near-ties) hold no accuracy
            found[identity(r)] = r
    return found


def _noise(
    metric: Metric, a: RunRecord, b: RunRecord, old_rows: Predictions | None, new_rows: Predictions | None
) -> Interval | None:
    """The bootstrap interval of the change of `metric` from `a` to `b`, when the records allow one."""
    if metric.spread is not None:
        return metric.change(a, b)
    kind, _, name = metric.name.partition(".")
    if kind == "accuracy" and old_rows is not None and new_rows is not None:
        base_rows, rows = old_rows(a), new_rows(b)
        if base_rows and rows:
            return accuracy_delta(name, base_rows, rows)
    return None


def compare(
    old: Sequence[RunRecord],
    new: Sequence[RunRecord],
    thresholds: Sequence[Threshold],
    old_predictions: Predictions | None = None,
    new_predictions: Predictions | None = None,
) -> Comparison:
    """Match runs, check they are comparable, and compute the changes of the thresholds' metrics (or the
    default ones), each judged against its noise."""
    before, after = _index(old), _index(new)
    if not before.keys() & after.keys():
        raise BenchError(
            "no run of OLD matches a run of NEW (same suite, task, model, data, device, shapes, compressor)"
        )
    result = Comparison(
        only_old=sorted(_label(before[k]) for k in before.keys() - after.keys()),
        only_new=sorted(_label(after[k]) for k in after.keys() - before.keys()),
    )
    machines = {r.machine for r in old} | {r.machine for r in new}
    if len(machines) > 1:
        result.warnings.append(f"the records come from several machines ({', '.join(sorted(machines))})")
    metrics = [m for name in dict.fromkeys([t.metric for t in thresholds] or DEFAULT_METRICS) if (m := lookup(name))]
    gated = {t.metric for t in thresholds}
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        run = _label(b)
        old_conditions, new_conditions = conditions(a), conditions(b)
        differ = [k for k in old_conditions if old_conditions[k] != new_conditions[k]]
        if differ:
            detail = "; ".join(f"{k}: {old_conditions[k][:120]} → {new_conditions[k][:120]}" for k in differ)
            result.mismatches.append(f"{run}: not comparable: {detail}")
        if a.status == Status.OK and b.status != Status.OK:
            reason = f": {b.error.describe()}" if b.error else ""
            result.status_changes.append(f"{run}: was ok, now {b.status.value}{reason}")
            continue
        if a.status != Status.OK or b.status != Status.OK:
            continue
        for metric in metrics:
            change = Change(run, metric.name, metric.read(a), metric.read(b))
            if change.old is None and change.new is None and metric.name not in gated:
                continue
            if change.old is not None and change.new is not None:
                change.interval = _noise(metric, a, b, old_predictions, new_predictions)
                crossed = next(
                    (t for t in thresholds if t.metric == metric.name and t.crossed(change.old, change.new)), None
                )
                if crossed is not None and change.interval is not None and not change.interval.significant:
                    change.within_noise = crossed
                else:
                    change.crossed = crossed
            result.changes.append(change)
    return result
