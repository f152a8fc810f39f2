"""Scoring in stages (successive halving's rungs): score the first examples, judge the paired interval of the
budget's metric against the baseline, and stop when no later example can bring it back within budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.core.metrics import MetricValue
from bench.core.records import RungCheck, RungTrail
from bench.core.settings import Example, Prediction
from bench.core.suite import RungPlan
from bench.core.task import EvalOutput, Task
from bench.report.bootstrap import accuracy_delta

ScoreChunk = Callable[[Sequence[Example]], EvalOutput]
"""Predicts and scores a contiguous chunk of the run's examples (one `Task.evaluate` call)."""


def can_stage(task: Task) -> bool:
    """Whether the task can score prediction rows on their own (`Task.score_predictions`)."""
    return type(task).score_predictions is not Task.score_predictions


def bounds(plan: RungPlan, total: int) -> list[int]:
    """Examples scored after each stage: the rung sizes below `total`, then `total`."""
    return [size for size in plan.sizes if size < total] + [total]


def judge(plan: RungPlan, baseline: Sequence[Prediction], rows: Sequence[Prediction]) -> RungCheck | None:
    """The interval of the metric's change on the rows scored so far (None: the rows cannot give one)."""
    interval = accuracy_delta(plan.metric, baseline, rows)
    if interval is None:
        return None
    return RungCheck(
        examples=len(rows),
        delta=interval.delta,
        low=interval.low,
        high=interval.high,
        allowed_delta=plan.allowed_delta,
        outside=interval.high < plan.allowed_delta - 1e-9,
    )


def score_in_stages(
    task: Task,
    examples: Sequence[Example],
    score_chunk: ScoreChunk,
    plan: RungPlan,
    baseline: Sequence[Prediction],
) -> tuple[dict[str, MetricValue], list[Prediction], RungTrail]:
    """Score `examples` stage by stage, stopping after a stage whose interval lies wholly outside the budget.
    Returns the metrics of the rows scored (as one evaluation of them would give), the rows and the checks."""
    rows: list[Prediction] = []
    trail = RungTrail(metric=plan.metric)
    done = 0
    for end in bounds(plan, len(examples)):
        rows += score_chunk(examples[done:end]).predictions
        done = end
        check = judge(plan, baseline, rows)
        if check is None:
            continue
        trail.checks.append(check)
        if check.outside and end < len(examples):
            trail.stopped = (
                f"after {end} of {len(examples)} examples, the 95% interval of {plan.metric}'s change "
                f"[{check.low:+.2f}, {check.high:+.2f}] lies wholly below the allowed {plan.allowed_delta:+.2f}"
            )
            break
    metrics = task.score_predictions(rows)
    if metrics is None:
        raise TypeError(f"task {task.name} cannot score prediction rows: check can_stage first")
    return metrics, rows, trail
