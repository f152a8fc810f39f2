"""The sensitivity strategy: measure what keeping each layer (or block) alone in float gives back, rank the
layers by it, then keep the most sensitive ones in float, one more at a time, until the budget holds.

Every row is first measured as the suite writes it. A quantizer whose fully quantized form is no better on
the objective than the best candidate already within budget is not searched: keeping layers in float only
adds work, so no configuration of it can win. Nor is a chain that misses the budget without its quantizing
step.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.tune.layers import Unit
from bench.tune.space import Family
from bench.tune.trials import Trial, TrialRunner


def best_feasible(trials: Sequence[Trial], runner: TrialRunner) -> Trial | None:
    """The candidate with the best objective among those within budget."""
    return next(iter(ranked_feasible(trials, runner)), None)


def ranked_feasible(trials: Sequence[Trial], runner: TrialRunner) -> list[Trial]:
    """The candidates within budget, best objective first."""
    feasible = [t for t in trials if t.feasible and t.objective is not None]
    return sorted(feasible, key=lambda t: runner.objective.cost(t.objective or 0.0))


def given_back(trial: Trial, full: Trial) -> float | None:
    """How much accuracy `trial` has over `full`, on the tuning examples both scored: all of them, or, when
    either stopped at a rung, the largest rung both reached (None: no shared figure)."""
    if not (trial.ok and full.ok) or trial.accuracy is None or full.accuracy is None:
        return None
    if trial.complete and full.complete:
        return trial.accuracy - full.accuracy
    mine, theirs = trial.record.rungs, full.record.rungs
    if mine is None or theirs is None:
        return None
    shared = {c.examples for c in mine.checks} & {c.examples for c in theirs.checks}
    if not shared:
        return None
    n = max(shared)
    a, b = mine.delta_at(n), theirs.delta_at(n)
    return None if a is None or b is None else a - b


def search(runner: TrialRunner, families: Sequence[Family], units: Sequence[Unit]) -> None:
    """Run the strategy; the trials accumulate in `runner.trials`."""
    written: dict[str, Trial] = {}
    for family in families:
        trial = runner.measure(family.candidate({}), family.name, "as the suite writes it")
        if trial is None:
            return
        written[family.name] = trial
    for family in families:
        full = written[family.name]
        if family.layer_step is None or not full.ok or full.feasible:
            continue
        best = best_feasible(runner.trials, runner)
        if best is not None and runner.objective.cost(best.objective or 0.0) <= runner.objective.cost(
            full.objective or 0.0
        ):
            runner.console.print(
                f"  [dim]{family.name}: not searched, fully quantized it is already slower than "
                f"{best.row.display_name}, which keeps the budget[/dim]"
            )
            continue
        if not _search_family(runner, family, full, units):
            return


def _search_family(runner: TrialRunner, family: Family, full: Trial, units: Sequence[Unit]) -> bool:
    """Rank the units of one family and keep the most sensitive in float until the budget holds; False
    when the limits stopped the search. A chain that misses the budget without its quantizing step loses
    its accuracy elsewhere (a pruned or distilled model): keeping layers in float cannot help it."""
    unquantized = family.unquantized()
    if unquantized is not None:
        bound = runner.measure(unquantized, family.name, "without its quantizing step: the most float layers give back")
        if bound is None:
            return False
        if bound.ok and not bound.feasible:
            runner.console.print(
                f"  [dim]{family.name}: not searched further, it misses the budget even unquantized[/dim]"
            )
            return True
    gains: list[tuple[float, int, Unit]] = []
    for index, unit in enumerate(units):
        trial = runner.measure(family.candidate({}, [unit.pattern]), family.name, f"{unit.name} alone kept in float")
        if trial is None:
            return False
        gain = given_back(trial, full)
        if gain is not None:
            gains.append((gain, index, unit))
    ranked = [unit for _, _, unit in sorted(gains, key=lambda g: (-g[0], g[1]))]
    for k in range(1, len(ranked) + 1):
        kept = ranked[:k]
        names = ", ".join(u.name for u in kept)
        trial = runner.measure(
            family.candidate({}, [u.pattern for u in kept]), family.name, f"the {k} most sensitive in float: {names}"
        )
        if trial is None:
            return False
        if trial.feasible:
            return True
    return True
