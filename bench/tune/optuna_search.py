"""The optuna strategy: a seeded multi-objective search (TPE or NSGA-II) over the rows' declared settings,
with the accuracy budget as a constraint. Candidates are proposed with Optuna's ask/tell interface and
measured as ordinary trials; a resumed search replays the same proposals from the stored records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from bench.core.errors import BenchError
from bench.core.settings import Choice, IntRange, JsonScalar
from bench.tune.space import Family
from bench.tune.trials import TrialRunner

if TYPE_CHECKING:
    import optuna

Sampler = Literal["tpe", "nsga2"]
CONSTRAINT = "budget_shortfall"
"""User attribute holding how far a candidate's accuracy is below the budget's floor (<= 0: within)."""


def _constraints(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    return (float(trial.user_attrs.get(CONSTRAINT, 1.0)),)


def make_study(sampler: Sampler, seed: int) -> optuna.Study:
    """A study minimising the objective's cost and maximising accuracy, seeded."""
    try:
        import optuna
    except ImportError:
        raise BenchError("--strategy optuna needs Optuna: pip install 'bench[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    chosen: optuna.samplers.BaseSampler
    if sampler == "nsga2":
        chosen = optuna.samplers.NSGAIISampler(seed=seed, constraints_func=_constraints)
    else:
        chosen = optuna.samplers.TPESampler(seed=seed, constraints_func=_constraints, multivariate=True)
    return optuna.create_study(directions=["minimize", "maximize"], sampler=chosen)


def propose(trial: optuna.Trial, families: Sequence[Family]) -> tuple[Family, dict[str, JsonScalar]]:
    """A row and values of its searchable settings (each family's settings are its own parameters)."""
    names = [f.name for f in families]
    family = families[names.index(str(trial.suggest_categorical("row", names)))]
    values: dict[str, JsonScalar] = {}
    for param, setting in family.settings.items():
        key = f"{family.name}:{param}"
        dim = setting.dimension
        if isinstance(dim, Choice):
            values[param] = trial.suggest_categorical(key, list(dim.values))
        elif isinstance(dim, IntRange):
            values[param] = trial.suggest_int(key, dim.low, dim.high, step=dim.step)
        else:
            values[param] = trial.suggest_float(key, dim.low, dim.high, step=dim.step, log=dim.log)
    return family, values


def search(runner: TrialRunner, families: Sequence[Family], sampler: Sampler, seed: int, trials: int) -> None:
    """Propose and measure up to `trials` candidates (fewer when the limits stop the search). A proposal
    measured before costs nothing; proposals stop after ten times `trials`, for spaces smaller than that."""
    import optuna

    study = make_study(sampler, seed)
    floor = runner.budget.floor(runner.baseline_value)
    seen: set[str] = set()
    for _ in range(10 * trials):
        if len(seen) >= trials:
            return
        asked = study.ask()
        family, values = propose(asked, families)
        row = family.candidate(values)
        problem = family.problem(row)
        if problem is not None:
            study.tell(asked, state=optuna.trial.TrialState.PRUNED)
            continue
        seen.add(row.display_name)
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        measured = runner.measure(row, family.name, shown or "no searchable setting")
        if measured is None:
            study.tell(asked, state=optuna.trial.TrialState.FAIL)
            return
        if not measured.ok or measured.accuracy is None or measured.objective is None:
            study.tell(asked, state=optuna.trial.TrialState.FAIL)
            continue
        asked.set_user_attr(CONSTRAINT, floor - measured.accuracy)
        study.tell(asked, [runner.objective.cost(measured.objective), measured.accuracy])
