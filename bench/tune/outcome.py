"""What a search leaves behind: the Pareto front of its trials, `tune.json`, `tune.md`, and `tuned.yaml`,
a suite that reproduces the chosen configuration with `bench run`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel

from bench.core.records import atomic_write_text
from bench.core.suite import CompressorConfig
from bench.suite_yaml import read_yaml
from bench.tune.confirm import Verdict
from bench.tune.retime import Retiming
from bench.tune.trials import Trial


class TrialRow(BaseModel):
    """One trial as the summary lists it."""

    label: str
    family: str
    key: str
    settings: dict[str, object]
    """The candidate row (name or chain, with each step's config)."""
    status: str
    accuracy: float | None
    delta: float | None
    """Against the baseline; for a candidate stopped at a rung, the paired change on the examples it scored."""
    objective: float | None
    feasible: bool
    on_front: bool
    reused: bool
    why: str
    examples: int | None = None
    """Tuning examples it scored (fewer than the slice when it stopped at a rung)."""
    stopped: str | None = None
    """Why it stopped scoring at a rung (its accuracy interval wholly outside the budget), or None."""


class TuningExamples(BaseModel):
    """Where the candidates were scored: never the evaluation examples."""

    split: str
    offset: int
    count: int
    ids: list[str]
    evaluation_ids_shared: int
    """How many tuning ids the confirmation's evaluation examples also hold (always 0: checked)."""


class TuneSummary(BaseModel):
    """The search, its front and its confirmed choice (`tune.json`)."""

    suite: str
    budget: str
    metric: str
    objective: str
    strategy: str
    seed: int
    baseline_accuracy: float
    baseline_objective: float | None
    tuning: TuningExamples
    rungs: list[int] = []
    """Tuning examples after which each candidate was judged before scoring the rest (empty: no rungs)."""
    trials: list[TrialRow]
    retimed: list[Retiming] = []
    """The near-tied candidates timed again before the choice (empty: no near-tie)."""
    chosen: str | None
    stopped: str | None
    """Why the search ended before its strategy did (a trial or time budget), or None."""
    verdict: Verdict | None

    def snippet(self) -> str | None:
        """The chosen row as a suite's `compressors:` entry (YAML), or None."""
        row = next((t for t in self.trials if t.label == self.chosen), None)
        if row is None:
            return None
        entry = {"label": row.label, **row.settings}
        return yaml.safe_dump([entry], sort_keys=False, allow_unicode=True)


def on_front(trials: Sequence[Trial], cost: dict[int, float]) -> set[int]:
    """Indices of the trials no other trial beats on both accuracy and the objective (of those that scored
    the whole tuning slice)."""
    points = {i: (t.accuracy, cost[i]) for i, t in enumerate(trials) if t.complete and t.accuracy is not None}
    front = set()
    for i, (acc, c) in points.items():
        dominated = any(
            (a >= acc and k <= c) and (a > acc or k < c) for j, (a, k) in points.items() if j != i and a is not None
        )
        if not dominated:
            front.add(i)
    return front


def trial_rows(trials: Sequence[Trial], baseline_value: float, cost: dict[int, float]) -> list[TrialRow]:
    """The summary's rows, in the order the trials ran."""
    front = on_front(trials, cost)
    return [
        TrialRow(
            label=t.row.display_name,
            family=t.family,
            key=t.record.spec.key,
            settings=t.row.model_dump(exclude_none=True, exclude={"label"}),
            status=t.record.status.value,
            accuracy=t.accuracy,
            delta=t.delta(baseline_value),
            objective=t.objective,
            feasible=t.feasible,
            on_front=i in front,
            reused=t.reused,
            why=t.why,
            examples=t.examples,
            stopped=t.stopped,
        )
        for i, t in enumerate(trials)
    ]


def figure(value: float | None, digits: int = 2, sign: bool = False) -> str:
    """A figure for tables and messages: `digits` decimals (signed if `sign`), or '–' when missing."""
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def markdown(summary: TuneSummary) -> str:
    """`tune.md`: the choice and its verdict, then every trial with the front marked."""
    lines = [
        f"# bench tune · {summary.suite}",
        "",
        f"Budget `{summary.budget}` ({summary.metric}); objective `{summary.objective}`; strategy "
        f"`{summary.strategy}` (seed {summary.seed}). Candidates were scored on {summary.tuning.count} tuning "
        f"examples of split `{summary.tuning.split}` from #{summary.tuning.offset} (none of them evaluation "
        f"examples), with quick latency; the choice was confirmed on the evaluation examples with the full "
        "measurement.",
        "",
    ]
    if summary.rungs:
        stopped = sum(1 for t in summary.trials if t.stopped)
        lines += [
            f"Each candidate was judged after {' and '.join(map(str, summary.rungs))} tuning examples, and stopped "
            f"scoring where the paired 95% interval of its {summary.metric} change lay wholly outside the budget: "
            f"{stopped} of {len(summary.trials)} candidates stopped early.",
            "",
        ]
    if summary.stopped:
        lines += [f"The search stopped early: {summary.stopped}.", ""]
    v = summary.verdict
    if summary.chosen is None:
        lines += ["**No candidate kept the budget on the tuning examples.**", ""]
    elif v is None:
        lines += [f"Chosen: `{summary.chosen}`, which failed on the evaluation examples.", ""]
    else:
        factor = f" ({v.factor:.2f}x the baseline)" if v.factor else ""
        lines += [
            f"Chosen: `{summary.chosen}`. On {v.evaluation_examples} evaluation examples: {v.metric} {v.value:.2f} "
            f"against {v.baseline:.2f}, a change of {v.delta:+.2f} ({v.interval_text}); the budget allows "
            f"{v.allowed_delta:+.2f}. It **{'holds' if v.holds_at_point else 'does not hold'}** at the point "
            f"estimate and {v.over_interval} over the whole interval. {v.objective}: "
            f"{figure(v.chosen_objective)} against {figure(v.baseline_objective)}{factor}.",
            "",
        ]
    lines += _retimed(summary)
    snippet = summary.snippet()
    if snippet is not None:
        lines += ["The chosen row, for a suite's `compressors:` (`tuned.yaml` holds a whole suite with it):", ""]
        lines += ["```yaml", snippet.rstrip(), "```", ""]
    lines += [
        f"| # | candidate | row | {summary.metric} | Δ | {summary.objective} | within budget | front | what it tests |",
        "| ---: | --- | --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for i, t in enumerate(summary.trials, 1):
        lines.append(
            f"| {i} | `{t.label}` | {t.family} | {figure(t.accuracy)} | {figure(t.delta, sign=True)} | "
            f"{figure(t.objective, 3)} | {_within(t)} | "
            f"{'★' if t.on_front else ''} | {t.why}{f'; stopped {t.stopped}' if t.stopped else ''} |"
        )
    return "\n".join(lines) + "\n"


def _within(trial: TrialRow) -> str:
    """The table's "within budget" cell."""
    if trial.status != "ok":
        return trial.status
    if trial.stopped:
        return f"no, stopped at {trial.examples}"
    return "yes" if trial.feasible else "no"


def _retimed(summary: TuneSummary) -> list[str]:
    """The near-tie paragraph and table of tune.md (nothing without a near-tie)."""
    if not summary.retimed:
        return []
    rounds = max(len(r.rounds) for r in summary.retimed)
    lines = [
        f"Near-tie in quick {summary.objective}: these candidates' bootstrap intervals overlapped, so each was "
        f"timed again in fresh processes, {rounds} interleaved rounds (each round in the reverse order of the "
        "last), and the best mean chosen:",
        "",
        "| candidate | quick | " + " | ".join(f"round {i}" for i in range(1, rounds + 1)) + " | mean | chosen |",
        "| --- | ---: | " + "---: | " * rounds + "---: | --- |",
    ]
    for r in summary.retimed:
        cells = [figure(r.quick, 3), *(figure(v, 3) for v in r.rounds), *["–"] * (rounds - len(r.rounds))]
        lines.append(f"| `{r.label}` | {' | '.join(cells)} | {figure(r.mean, 3)} | {'✓' if r.chosen else ''} |")
    return [*lines, ""]


def tuned_suite(suite_path: Path, row: CompressorConfig, out: Path, comment: str) -> str:
    """The suite file with its compressors replaced by the baseline and `row`, with the paths it names
    relative to the suite file rewritten relative to `out`, where it is written."""
    raw = read_yaml(suite_path)
    assert isinstance(raw, dict)
    here = suite_path.parent.resolve()

    def moved(value: str) -> str:
        path = Path(value)
        if path.is_absolute() or not (here / path).exists():
            return value
        return os.path.relpath(here / path, out.resolve())

    if isinstance(raw.get("data_dir"), str):
        raw["data_dir"] = moved(raw["data_dir"])
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("id"), str):
        model["id"] = moved(model["id"])
    raw["name"] = f"{raw.get('name', suite_path.stem)}-tuned"
    raw["compressors"] = [{"name": "baseline"}, row.model_dump(exclude_none=True, exclude_defaults=True)]
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    return header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def write(summary: TuneSummary, out: Path, suite_text: str | None) -> list[Path]:
    """Write tune.json, tune.md and (with a choice) tuned.yaml into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "tune.json", out / "tune.md"]
    atomic_write_text(files[0], summary.model_dump_json(indent=2))
    atomic_write_text(files[1], markdown(summary))
    if suite_text is not None:
        files.append(out / "tuned.yaml")
        atomic_write_text(files[2], suite_text)
    return files
