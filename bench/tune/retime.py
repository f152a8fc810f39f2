"""Near-ties: candidates within budget whose quick latency cannot be told apart from the best's are timed
again, in fresh processes, in interleaved rounds (A B C, then C B A), before one is chosen.

Quick latency is a second of samples taken minutes apart from the other candidates' on a machine that
drifts; a choice between two candidates whose bootstrap intervals overlap is a coin toss unless they are
measured again side by side."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from bench.core.records import Status
from bench.core.spec import retimed
from bench.report.bootstrap import statistic_change
from bench.tune.trials import Trial, TrialRunner

MAX_TIED = 3
"""At most this many candidates (the best and its closest rivals) are timed again."""


class Retiming(BaseModel):
    """One candidate's repeated timings."""

    label: str
    quick: float
    """The objective from its trial."""
    rounds: list[float]
    """The objective in each repeated timing, in round order."""
    mean: float | None
    """The mean over the rounds, which the interleaved order (A B, then B A) makes fair to a machine that
    drifts steadily (None: no repeated timing succeeded)."""
    chosen: bool = False


def near_ties(ranked: Sequence[Trial], runner: TrialRunner) -> list[Trial]:
    """The best candidate and those whose objective's bootstrap interval of change against it includes no
    change (at most MAX_TIED); only the best when the objective has no raw samples (size, memory)."""
    if not ranked:
        return []
    best, metric = ranked[0], runner.objective.metric
    if metric.spread is None:
        return [best]
    base = metric.samples(best.record)
    tied = [best]
    for other in ranked[1:]:
        samples = metric.samples(other.record)
        if base is None or samples is None:
            continue
        change = statistic_change(base, samples, metric.spread[1])
        if change.low <= 0.0 <= change.high and len(tied) < MAX_TIED:
            tied.append(other)
    return tied


def settle(ranked: Sequence[Trial], runner: TrialRunner, rounds: int) -> tuple[Trial | None, list[Retiming]]:
    """The candidate to confirm: the best by quick latency, or, among near-ties, the best over `rounds`
    interleaved repeated timings of each. Returns it and the repeated timings (empty: no tie)."""
    tied = near_ties(ranked, runner)
    if len(tied) < 2 or rounds < 1:
        return (tied[0] if tied else None), []
    metric = runner.objective.metric
    names = ", ".join(t.row.display_name for t in tied)
    runner.console.print(f"[bold]near-tie[/bold] in quick {metric.name}: timing {names} again, {rounds} rounds")
    per_round: dict[int, list[float]] = {i: [] for i in range(len(tied))}
    for round_ in range(1, rounds + 1):
        order = list(range(len(tied))) if round_ % 2 else list(reversed(range(len(tied))))
        for i in order:
            spec = retimed(tied[i].record.spec, round_)
            record, _ = runner.run_spec(spec, None, f"repeated timing {round_} of {rounds}")
            value = metric.read(record) if record.status == Status.OK else None
            if value is not None:
                per_round[i].append(value)
    rows = [
        Retiming(
            label=t.row.display_name,
            quick=t.objective or 0.0,
            rounds=per_round[i],
            mean=sum(per_round[i]) / len(per_round[i]) if per_round[i] else None,
        )
        for i, t in enumerate(tied)
    ]
    timed = [i for i, row in enumerate(rows) if row.mean is not None]
    if not timed:
        return tied[0], rows
    winner = min(timed, key=lambda i: runner.objective.cost(rows[i].mean or 0.0))
    rows[winner].chosen = True
    return tied[winner], rows
