"""Trials: each candidate is an ordinary run on the tuning examples (quick latency), stored as a record, so
that an interrupted search resumes without measuring a stored candidate again."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console

from bench.core.environment import Environment
from bench.core.errors import BenchError
from bench.core.launcher import ResolvedSuite, RunOptions
from bench.core.records import RunRecord, Status
from bench.core.spec import RunSpec
from bench.core.suite import CompressorConfig, SuiteConfig
from bench.launchers.sequence import environment_for, plan, reusable
from bench.launchers.single_run import run_one
from bench.plan import BASELINE
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

    def _spec(self, row: CompressorConfig) -> tuple[RunSpec, str]:
        suite = self.resolved.suite.model_copy(update={"compressors": [CompressorConfig(name=BASELINE), row]})
        resolved = replace(self.resolved, suite=suite)
        specs = plan(resolved, RunOptions(results_dir=self.folder, quick=True))
        baseline, spec = specs
        return spec, baseline.key

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
        spec, _ = self._spec(CompressorConfig(name=BASELINE))
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
        spec, baseline_key = self._spec(row)
        record, reused = self._run(spec, baseline_key)
        accuracy = self.budget.read(record) if record.status == Status.OK else None
        value = self.objective.read(record) if record.status == Status.OK else None
        feasible = value is not None and self.budget.holds(self.baseline_value, accuracy)
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
            figures = (
                f"  {self.budget.metric} {trial.accuracy:.2f} ({trial.accuracy - self.baseline_value:+.2f}), "
                f"{self.objective.name} {trial.objective:.4g}"
            )
        elif record.error is not None:
            figures = f"  {record.error.describe()[:200]}"
        number = f"#{len(self.trials)} " if trial is not None else ""
        line = f"  {mark} {number}{for_console(label)}{for_console(figures)}{verdict}"
        self.console.print(line, highlight=False)
        if why:
            self.console.print(f"      [dim]{for_console(why)}[/dim]", highlight=False)
