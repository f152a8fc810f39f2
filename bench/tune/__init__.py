"""`bench tune`: the configuration that is best on an objective while keeping an accuracy budget.

Candidates are scored on tuning examples disjoint from the evaluation examples, each as an ordinary
stored run (so a search resumes where it stopped), in rungs that stop a hopeless candidate early; near-ties
in quick latency are timed again; the choice is confirmed once on the evaluation examples with the full
measurement and the budget judged with a paired bootstrap interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from bench.core.environment import machine_name
from bench.core.errors import BenchError
from bench.core.launcher import ResolvedSuite
from bench.folder_lock import folder_lock
from bench.launchers.sequence import clean_work
from bench.plan import results_folder
from bench.tune import optuna_search, sensitivity
from bench.tune.confirm import Confirmation, confirm, evaluation_ids
from bench.tune.goals import Budget, Objective
from bench.tune.layers import Granularity, linear_layers, units
from bench.tune.optuna_search import Sampler
from bench.tune.outcome import TuneSummary, TuningExamples, trial_rows, tuned_suite, write
from bench.tune.retime import Retiming, settle
from bench.tune.space import families
from bench.tune.trials import Limits, TrialRunner

DEFAULT_OPTUNA_TRIALS = 30
DEFAULT_RUNGS = (50, 150)
"""Tuning examples after which a candidate's accuracy is judged before it scores the rest."""
DEFAULT_RETIME_ROUNDS = 2


@dataclass
class TuneOptions:
    """Command-line choices of `bench tune`."""

    budget: Budget
    objective: Objective
    results_dir: Path
    strategy: str = "sensitivity"
    sampler: Sampler = "tpe"
    trials: int | None = None
    seconds: float | None = None
    compressors: list[str] = field(default_factory=list)
    granularity: Granularity = "block"
    limit: int | None = None
    """Evaluation examples of the confirmation (default: the suite's)."""
    force: bool = False
    rungs: tuple[int, ...] = DEFAULT_RUNGS
    """Rung sizes below the tuning slice's (empty: every candidate scores the whole slice)."""
    retime_rounds: int = DEFAULT_RETIME_ROUNDS
    """Interleaved repeated timings of near-tied candidates (0: choose on quick latency alone)."""
    output: Path | None = None
    """Where tune.json, tune.md and tuned.yaml go (default: the search's results folder)."""


@dataclass(frozen=True)
class TuneResult:
    """The summary written, the confirmation (if a candidate kept the budget) and the files."""

    summary: TuneSummary
    confirmation: Confirmation | None
    files: list[Path]


def tune(resolved: ResolvedSuite, suite_path: Path, options: TuneOptions, console: Console) -> TuneResult:
    """Search, confirm, and write the outcome."""
    suite = resolved.suite
    chosen_families = families(suite, options.compressors)
    tuning_suite = suite.model_copy(update={"task": suite.task.tuning_slice(options.limit)})
    folder = results_folder(options.results_dir, machine_name(), f"{suite.name}-tune")
    limits = Limits(options.trials, options.seconds)
    if options.strategy == "optuna" and limits.trials is None:
        limits.trials = DEFAULT_OPTUNA_TRIALS
    with folder_lock(folder):
        clean_work(folder, console)
        runner = TrialRunner(
            resolved,
            tuning_suite,
            folder,
            options.budget,
            options.objective,
            limits,
            console,
            options.force,
            rungs=options.rungs,
        )
        if options.strategy == "optuna":
            optuna_search.search(runner, chosen_families, options.sampler, suite.seed, limits.trials or 0)
        else:
            layered = any(f.layer_step is not None for f in chosen_families)
            found = units(_layer_names(resolved), options.granularity) if layered else []
            sensitivity.search(runner, chosen_families, found)
        best, retimings = settle(sensitivity.ranked_feasible(runner.trials, runner), runner, options.retime_rounds)
        confirmation = None
        if best is not None:
            console.print(f"[bold]confirming[/bold] {best.row.display_name} on the evaluation examples")
            confirmation = confirm(runner, resolved, best.row, options.budget, options.objective, options.limit)
        summary = _summary(runner, options, confirmation, best.row.display_name if best else None, retimings)
        out = options.output or folder
        text = None
        if best is not None:
            when = datetime.now(timezone.utc).isoformat(timespec="seconds")
            comment = (
                f"Tuned by `bench tune {suite_path} --budget {options.budget.text} --objective "
                f"{options.objective.name}` on {when}; see tune.md.\nReproduce: bench run <this file>"
            )
            text = tuned_suite(suite_path, best.row, out, comment)
        return TuneResult(summary, confirmation, write(summary, out, text))


def _layer_names(resolved: ResolvedSuite) -> list[str]:
    if not resolved.model.local or resolved.model.architecture:
        raise BenchError("--strategy sensitivity reads layer names from a local model folder: use --strategy optuna")
    return linear_layers(Path(resolved.model.location))


def _summary(
    runner: TrialRunner,
    options: TuneOptions,
    confirmation: Confirmation | None,
    chosen: str | None,
    retimings: list[Retiming],
) -> TuneSummary:
    tuning_ids = sorted(evaluation_ids(runner.folder, runner.baseline))
    shared = 0
    if confirmation is not None:
        shared = len(set(tuning_ids) & evaluation_ids(runner.folder, confirmation.baseline))
        if shared:
            raise BenchError(f"{shared} tuning examples are also evaluation examples: check the split's ids")
    task = runner.resolved.suite.task
    cost = {i: options.objective.cost(t.objective) for i, t in enumerate(runner.trials) if t.objective is not None}
    return TuneSummary(
        suite=runner.resolved.suite.name,
        budget=options.budget.text,
        metric=options.budget.metric,
        objective=options.objective.name,
        strategy=options.strategy if options.strategy != "optuna" else f"optuna ({options.sampler})",
        seed=runner.resolved.suite.seed,
        baseline_accuracy=runner.baseline_value,
        baseline_objective=options.objective.read(runner.baseline),
        tuning=TuningExamples(
            split=task.split, offset=task.offset, count=len(tuning_ids), ids=tuning_ids, evaluation_ids_shared=shared
        ),
        rungs=runner.rungs.sizes if runner.rungs else [],
        trials=trial_rows(runner.trials, runner.baseline_value, cost),
        retimed=retimings,
        chosen=chosen,
        stopped=runner.stopped,
        verdict=confirmation.verdict if confirmation else None,
    )
