"""Confirmation: the chosen configuration measured once on the suite's evaluation examples with its full
latency measurement, beside the baseline, and the budget judged with the paired bootstrap interval."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import BaseModel

from bench.core.errors import BenchError
from bench.core.launcher import ResolvedSuite, RunOptions
from bench.core.records import PREDICTIONS_SUFFIX, RunRecord, Status, read_predictions
from bench.core.settings import Prediction
from bench.core.suite import CompressorConfig
from bench.launchers.sequence import plan
from bench.plan import BASELINE
from bench.report.bootstrap import accuracy_delta
from bench.tune.goals import Budget, Objective
from bench.tune.trials import TrialRunner


class Verdict(BaseModel):
    """The budget judged on the evaluation examples."""

    metric: str
    baseline: float
    value: float
    delta: float
    allowed_delta: float
    """The largest loss the budget allows, as a delta against the baseline."""
    low: float | None
    high: float | None
    """The paired bootstrap 95% interval of `delta` (None where the records cannot give one)."""
    holds_at_point: bool
    holds_over_interval: bool | None
    objective: str
    baseline_objective: float | None
    chosen_objective: float | None
    evaluation_examples: int

    @property
    def interval_text(self) -> str:
        """The interval as the output writes it."""
        return "no interval" if self.low is None else f"95% interval [{self.low:+.2f}, {self.high:+.2f}]"

    @property
    def over_interval(self) -> str:
        """Whether the budget holds over the whole interval, in words."""
        return {True: "holds", False: "does not hold", None: "cannot be judged"}[self.holds_over_interval]

    @property
    def factor(self) -> float | None:
        """How many times better the chosen configuration is on the objective (2.0: twice as fast)."""
        if not self.baseline_objective or not self.chosen_objective:
            return None
        ratio = self.chosen_objective / self.baseline_objective
        return ratio if self.objective == "throughput" else 1.0 / ratio


@dataclass(frozen=True)
class Confirmation:
    """The two evaluation records and the verdict."""

    baseline: RunRecord
    chosen: RunRecord
    verdict: Verdict | None
    """None when the chosen configuration failed on the evaluation examples."""


def _predictions(folder: Path, record: RunRecord) -> list[Prediction]:
    path = folder / f"{record.spec.key}{PREDICTIONS_SUFFIX}"
    return read_predictions(path) if path.is_file() else []


def confirm(
    runner: TrialRunner,
    resolved: ResolvedSuite,
    row: CompressorConfig,
    budget: Budget,
    objective: Objective,
    limit: int | None,
) -> Confirmation:
    """Measure `row` and the baseline on the evaluation examples (full measurement) and judge the budget."""
    suite = resolved.suite.model_copy(update={"compressors": [CompressorConfig(name=BASELINE), row]})
    specs = plan(replace(resolved, suite=suite), RunOptions(runner.folder, limit=limit))
    base_spec, spec = specs
    base, _ = runner.run_spec(base_spec, None, "baseline on the evaluation examples")
    chosen, _ = runner.run_spec(spec, base_spec.key, "the chosen configuration on the evaluation examples")
    if base.status != Status.OK:
        raise BenchError(
            f"the baseline failed on the evaluation examples: {base.error.describe() if base.error else ''}"
        )
    base_value = budget.read(base)
    value = budget.read(chosen) if chosen.status == Status.OK else None
    if base_value is None or value is None:
        return Confirmation(base, chosen, None)
    interval = None
    kind, _, name = budget.metric.partition(".")
    if kind == "accuracy":
        interval = accuracy_delta(name, _predictions(runner.folder, base), _predictions(runner.folder, chosen))
    allowed = budget.allowed_delta(base_value)
    delta = value - base_value
    verdict = Verdict(
        metric=budget.metric,
        baseline=base_value,
        value=value,
        delta=delta,
        allowed_delta=allowed,
        low=interval.low if interval else None,
        high=interval.high if interval else None,
        holds_at_point=delta >= allowed - 1e-9,
        holds_over_interval=(interval.low >= allowed - 1e-9) if interval else None,
        objective=objective.name,
        baseline_objective=objective.read(base),
        chosen_objective=objective.read(chosen),
        evaluation_examples=chosen.accuracy.n_examples if chosen.accuracy else 0,
    )
    return Confirmation(base, chosen, verdict)


def evaluation_ids(folder: Path, record: RunRecord) -> set[str]:
    """The example ids a run's predictions cover."""
    return {str(row["id"]) for row in _predictions(folder, record)}
