"""What `bench tune` looks for: an accuracy budget that must hold, and an objective to make best."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bench.catalogue import Metric, lookup
from bench.core.errors import BenchError
from bench.core.records import RunRecord

_BUDGET = re.compile(r"^(?P<metric>[A-Za-z0-9_.]+):(?P<value>[+-]?\d+(\.\d+)?)(?P<pct>%?)$")
OBJECTIVES = {
    "latency.p50": "latency.p50",
    "throughput": "throughput",
    "size": "size",
    "memory.peak": "memory.peak",
}
"""The objectives users may name, and the catalogue figure each reads."""

Kind = Literal["delta", "floor", "ratio"]


@dataclass(frozen=True)
class Budget:
    """How much accuracy a configuration may cost: `accuracy.f1:-1.0` (at most 1 point below the baseline),
    `agreement.exact_agreement:90` (at least 90), `accuracy.f1:99%` (at least 99% of the baseline's value)."""

    metric: str
    kind: Kind
    value: float
    text: str

    def floor(self, baseline: float) -> float:
        """The lowest value of the metric that keeps the budget, given the baseline's."""
        if self.kind == "delta":
            return baseline + self.value
        if self.kind == "ratio":
            return baseline * self.value / 100.0
        return self.value

    def holds(self, baseline: float, value: float | None) -> bool:
        """Whether `value` keeps the budget (a missing value does not)."""
        return value is not None and value >= self.floor(baseline) - 1e-9

    def allowed_delta(self, baseline: float) -> float:
        """The largest loss against the baseline that keeps the budget, as a (usually negative) delta."""
        return self.floor(baseline) - baseline

    def read(self, record: RunRecord) -> float | None:
        """The budget's metric in a record."""
        found = lookup(self.metric)
        return found.read(record) if found is not None else None


def parse_budget(text: str) -> Budget:
    """A budget from `--budget`, or a BenchError naming what is wrong."""
    match = _BUDGET.match(text.strip())
    if not match:
        raise BenchError(
            f"--budget {text[:80]!r}: expected METRIC:-N (points below the baseline), METRIC:N (a floor) or "
            "METRIC:N% (a share of the baseline), e.g. accuracy.f1:-1.0, agreement.exact_agreement:90, "
            "accuracy.f1:99%"
        )
    found = lookup(match["metric"])
    if found is None or not found.name.startswith(("accuracy.", "agreement.")):
        raise BenchError(f"--budget {text[:80]!r}: the budget is on an accuracy.NAME or agreement.NAME metric")
    number = float(match["value"])
    if match["pct"]:
        if match["value"].startswith(("+", "-")) or not 0 < number <= 100:
            raise BenchError(f"--budget {text[:80]!r}: a share of the baseline is between 0% and 100%, unsigned")
        return Budget(found.name, "ratio", number, text)
    kind: Kind = "delta" if match["value"].startswith(("+", "-")) else "floor"
    return Budget(found.name, kind, number, text)


@dataclass(frozen=True)
class Objective:
    """The figure a search makes best, in the direction the catalogue says is better."""

    metric: Metric

    @property
    def name(self) -> str:
        """The catalogue name."""
        return self.metric.name

    def read(self, record: RunRecord) -> float | None:
        """The objective's value in a record."""
        return self.metric.read(record)

    def cost(self, value: float) -> float:
        """A value to minimise: the figure itself, or its negation where higher is better."""
        return -value if self.metric.higher_is_better else value


def parse_objective(text: str) -> Objective:
    """An objective from `--objective`, or a BenchError listing the choices."""
    name = OBJECTIVES.get(text.strip())
    found = lookup(name) if name else None
    if found is None:
        raise BenchError(f"--objective {text[:80]!r}: choose one of {', '.join(OBJECTIVES)}")
    return Objective(found)
