"""Trials: each candidate is an ordinary run on the tuning examples (quick latency), stored as a record, so
that an interrupted search resumes without measuring a stored candidate again. Candidates score in rungs
(successive halving): one whose accuracy interval lies wholly outside the budget after the first rung's
examples stops scoring there."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console

from bench.core.environment import Environment
from bench.core.errors import BenchError
from bench.core.launcher import ResolvedSuite, RunOptions
from bench.core.records import RunRecord, Status
from bench.core.spec import RunSpec
from bench.core.suite import CompressorConfig, RungPlan, SuiteConfig
from bench.launchers.sequence import environment_for, plan, reusable
from bench.launchers.single_run import run_one
from bench.plan import BASELINE
from bench.report.bootstrap import has_interval
from bench.report.text import for_console
from bench.tune.goals import Budget, Objective


@dataclass(frozen=True)
class Trial:
    """One measured candidate."""

    row: CompressorConfig
    record: RunRecord
    accuracy: float | None
    objective: float | None
    feasible: bool
    reused: bool
    family: str
    """The suite row it varies."""
    why: str = ""
    """What the strategy was testing (e.g. "layer bert.encoder.layer.3 kept in float")."""

    @property
    def ok(self) -> bool:
        """Whether it ran and produced both figures."""
        return self.record.status == Status.OK and self.accuracy is not None and self.objective is not None

    @property
    def stopped(self) -> str | None:
        """Why it stopped scoring at a rung, its accuracy already outside the budget (None: it scored all)."""
        return self.record.rungs.stopped if self.record.rungs else None

    @property
    def complete(self) -> bool:
        """Whether both figures are there and the accuracy is over the whole tuning slice."""
        return self.ok and self.stopped is None

    def delta(self, baseline_value: float) -> float | None:
        """The accuracy change against the baseline: over the whole slice, or, for a candidate stopped at a
        rung, the paired change on the examples it scored (the baseline's value over all would mislead)."""
        rungs = self.record.rungs
        if self.stopped and rungs is not None and rungs.checks:
            return rungs.checks[-1].delta
        return None if self.accuracy is None else self.accuracy - baseline_value

    @property
    def examples(self) -> int | None:
        """Tuning examples it scored."""
        return self.record.accuracy.n_examples if self.record.accuracy else None


@dataclass
class Limits:
    """When the search stops: after `trials` candidates (stored ones count) or `seconds` of measuring."""

    trials: int | None = None
    seconds: float | None = None
    started: float = field(default_factory=time.monotonic)

    def spent(self, done: int) -> str | None:
        """Why no further trial may start, or None."""
        if self.trials is not None and done >= self.trials:
            return f"the trial budget ({self.trials}) is spent"
        if self.seconds is not None and time.monotonic() - self.started >= self.seconds:
            return f"the time budget ({self.seconds:g} s) is spent"
        return None


class TrialRunner:
    """Runs candidates on the tuning examples, one process each, storing every record in `folder`."""

    def __init__(
        self,
        resolved: ResolvedSuite,
        tuning: SuiteConfig,
        folder: Path,
        budget: Budget,
        objective: Objective,
        limits: Limits,
        console: Console,
        force: bool = False,
        rungs: Sequence[int] = (),
    ) -> None:
        self.resolved = replace(resolved, suite=tuning)
        self.folder = folder
        self.budget = budget
        self.objective = objective
        self.limits = limits
        self.console = console
        self.force = force
        self.here: Environment = environment_for(resolved.suite.devices)
        self.trials: list[Trial] = []
        self.stopped: str | None = None
        self.baseline = self._baseline()
        base = budget.read(self.baseline)
        if base is None:
            names = sorted(self.baseline.accuracy.metrics) if self.baseline.accuracy else []
            agree = sorted(self.baseline.agreement.metrics) if self.baseline.agreement else []
            known = [f"accuracy.{n}" for n in names] + [f"agreement.{n}" for n in agree]
            raise BenchError(
                f"--budget {budget.text}: the task reports no {budget.metric}; it reports {', '.join(known)}"
            )
        self.baseline_value = base
        self.rungs = self._rung_plan(rungs)

    def _rung_plan(self, sizes: Sequence[int]) -> RungPlan | None:
        """Rungs below the tuning slice's size, judged on the budget's metric (None: none, or a metric
        without a per-example interval, said on the console)."""
        total = self.baseline.accuracy.n_examples if self.baseline.accuracy else 0
        below = sorted({n for n in sizes if n < total})
        if not below:
            return None
        kind, _, name = self.budget.metric.partition(".")
        if kind != "accuracy" or not has_interval(name):
            self.console.print(
                f"  [dim]every candidate scores all {total} tuning examples: {self.budget.metric} has no paired "
                "interval to stop a candidate early on[/dim]"
            )
            return None
        self.console.print(
            f"  [dim]candidates score {', '.join(map(str, below))}, then {total} tuning examples, stopping "
            f"where the {name} interval lies wholly outside the budget[/dim]"
        )
        return RungPlan(sizes=below, metric=name, allowed_delta=self.budget.allowed_delta(self.baseline_value))

    def spec(self, row: CompressorConfig, rungs: RungPlan | None = None) -> RunSpec:
        """The run of `row` on the tuning examples (quick latency), scored in `rungs` when given."""
        suite = self.resolved.suite
        task = suite.task.model_copy(update={"rungs": rungs})
        suite = suite.model_copy(update={"task": task, "compressors": [CompressorConfig(name=BASELINE), row]})
        _, spec = plan(replace(self.resolved, suite=suite), RunOptions(results_dir=self.folder, quick=True))
        return spec

    def _run(self, spec: RunSpec, baseline_key: str | None) -> tuple[RunRecord, bool]:
        stored = reusable(self.folder, spec, self.here, self.force)
        if stored is not None:
            return stored, True
        return run_one(spec, self.folder, baseline_key), False

    def run_spec(self, spec: RunSpec, baseline_key: str | None, why: str) -> tuple[RunRecord, bool]:
        """Run (or reuse) a run outside the trial count, such as a baseline or the confirmation."""
        record, reused = self._run(spec, baseline_key)
        self._say(record, reused, why)
        return record, reused

    def _baseline(self) -> RunRecord:
        spec = self.spec(CompressorConfig(name=BASELINE))
        record, _ = self.run_spec(spec, None, "baseline on the tuning examples")
        if record.status != Status.OK:
            detail = record.error.describe() if record.error else record.status.value
            raise BenchError(f"the baseline failed on the tuning examples, so no budget can be judged: {detail[:300]}")
        return record

    def measure(self, row: CompressorConfig, family: str, why: str = "") -> Trial | None:
        """Measure one candidate, or None when the limits stop the search (the reason is kept in `stopped`).
        A candidate measured before in this search is returned again without counting."""
        for trial in self.trials:
            if trial.row == row:
                return trial
        reason = self.limits.spent(len(self.trials))
        if reason is not None:
            self.stopped = self.stopped or reason
            return None
        record, reused = self._run(self.spec(row, self.rungs), self.baseline.spec.key)
        accuracy = self.budget.read(record) if record.status == Status.OK else None
        value = self.objective.read(record) if record.status == Status.OK else None
        complete = record.rungs is None or record.rungs.stopped is None
        feasible = value is not None and complete and self.budget.holds(self.baseline_value, accuracy)
        trial = Trial(row, record, accuracy, value, feasible, reused, family, why)
        self.trials.append(trial)
        self._say(record, reused, why, trial)
        return trial

    def _say(self, record: RunRecord, reused: bool, why: str, trial: Trial | None = None) -> None:
        label = record.spec.compressor.display_name
        mark = (
            "[dim]stored[/dim]"
            if reused
            else ("[green]ok[/green]" if record.status == Status.OK else "[red]failed[/red]")
        )
        figures = verdict = ""
        if trial is not None and trial.ok and trial.accuracy is not None and trial.objective is not None:
            verdict = "  [green]within budget[/green]" if trial.feasible else "  [yellow]over budget[/yellow]"
            if trial.stopped:
                verdict = f"  [yellow]stopped at {trial.examples} examples[/yellow]"
            change = trial.delta(self.baseline_value)
            figures = (
                f"  {self.budget.metric} {trial.accuracy:.2f} ({change if change is not None else 0.0:+.2f}), "
                f"{self.objective.name} {trial.objective:.4g}"
            )
        elif record.error is not None:
            figures = f"  {record.error.describe()[:200]}"
        number = f"#{len(self.trials)} " if trial is not None else ""
        line = f"  {mark} {number}{for_console(label)}{for_console(figures)}{verdict}"
        self.console.print(line, highlight=False)
        if why:
            self.console.print(f"      [dim]{for_console(why)}[/dim]", highlight=False)
        if trial is not None and trial.stopped:
            self.console.print(f"      [dim]stopped {for_console(trial.stopped)}[/dim]", highlight=False)
