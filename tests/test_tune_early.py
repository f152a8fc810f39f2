"""A search that stops measuring what is already decided: rungs stop hopeless candidates, a chain that misses
the budget unquantized is measured once, and near-ties in quick latency are timed again."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

from bench.cli import parse_rungs
from bench.core.errors import BenchError
from bench.core.records import RungCheck, RungTrail
from bench.core.registry import TASKS
from bench.core.settings import Example, Prediction
from bench.core.sources import Source
from bench.core.spec import RunSpec, retimed
from bench.core.suite import CompressorConfig, RungPlan
from bench.core.task import EvalOutput
from bench.measure.staged import bounds, can_stage, score_in_stages
from bench.tune import retime, sensitivity
from bench.tune.goals import parse_budget, parse_objective
from bench.tune.layers import Unit
from bench.tune.outcome import TrialRow, TuneSummary, TuningExamples, markdown
from bench.tune.retime import Retiming, near_ties, settle
from bench.tune.space import family

# --- staged scoring ----------------------------------------------------------------------------------------

QA = TASKS.load("qa").from_mapping({})
PLAN = RungPlan(sizes=[50, 150], metric="f1", allowed_delta=-1.0)


def _row(i: int, right: bool) -> Prediction:
    answer = f"answer{i}"
    prediction = answer if right else "something else"
    f1 = 1.0 if right else 0.0
    return {"id": f"q{i}", "prediction": prediction, "answers": [answer], "f1": f1, "exact_match": f1}


def _scorer(right: list[bool], calls: list[int]) -> Any:
    """Predicts a chunk of examples: example i is answered right when right[i]."""

    def score(chunk: list[Example]) -> EvalOutput:
        calls.append(len(chunk))
        rows = [_row(int(str(e["id"])[1:]), right[int(str(e["id"])[1:])]) for e in chunk]
        return EvalOutput(metrics=QA.score_predictions(rows), predictions=rows)

    return score


EXAMPLES: list[Example] = [{"id": f"q{i}"} for i in range(300)]
BASELINE = [_row(i, i % 10 < 8) for i in range(300)]  # 80% right


def test_a_hopeless_candidate_stops_at_the_first_rung() -> None:
    calls: list[int] = []
    right = [i % 10 < 4 for i in range(300)]  # 40% right: 40 points below
    metrics, rows, trail = score_in_stages(QA, EXAMPLES, _scorer(right, calls), PLAN, BASELINE)
    assert calls == [50] and len(rows) == 50
    assert trail.stopped_at == 50 and trail.stopped is not None
    assert "after 50 of 300 examples" in trail.stopped and "wholly below the allowed -1.00" in trail.stopped
    check = trail.checks[0]
    assert check.outside and check.high < -1.0 and check.delta == pytest.approx(-40.0)
    assert metrics["f1"].value == pytest.approx(40.0)  # the accuracy of the 50 scored


def test_a_close_candidate_scores_everything_and_matches_one_evaluation() -> None:
    calls: list[int] = []
    right = [i % 10 < 8 and i != 7 for i in range(300)]  # one answer fewer than the baseline
    metrics, rows, trail = score_in_stages(QA, EXAMPLES, _scorer(right, calls), PLAN, BASELINE)
    assert calls == [50, 100, 150] and len(rows) == 300
    assert trail.stopped is None and trail.stopped_at is None
    assert [c.examples for c in trail.checks] == [50, 150, 300] and not any(c.outside for c in trail.checks)
    whole = _scorer(right, [])(EXAMPLES)
    assert metrics == whole.metrics  # the same figures one evaluate call over all examples gives


def test_the_last_rung_never_stops_and_rungs_above_the_slice_are_dropped() -> None:
    assert bounds(PLAN, 300) == [50, 150, 300]
    assert bounds(PLAN, 100) == [50, 100]
    assert bounds(PLAN, 40) == [40]
    right = [False] * 300
    _, rows, trail = score_in_stages(QA, EXAMPLES[:40], _scorer(right, []), PLAN, BASELINE)
    assert len(rows) == 40 and trail.stopped is None and trail.checks[0].outside


def test_tasks_say_whether_they_can_score_in_stages() -> None:
    assert can_stage(QA)
    assert can_stage(TASKS.load("summarization").from_mapping({}))


def test_seq2seq_scores_rows_as_its_evaluation_does() -> None:
    task = TASKS.load("translation").from_mapping({"source_lang": "en", "target_lang": "de"})
    rows: list[Prediction] = [
        {"id": "a", "prediction": "the river flows", "reference": "the river flows past", "output_tokens": 4},
        {"id": "b", "prediction": "an old bridge", "reference": "the old bridge", "output_tokens": 3},
    ]
    metrics = task.score_predictions(rows)
    assert set(metrics) >= {"bleu", "chrf", "output_tokens"} and metrics["output_tokens"].value == 3.5


def test_rung_plans_change_a_candidates_key_but_not_its_group(tiny_suite: Path) -> None:
    from bench.config import load_suite
    from bench.plan import expand

    suite = load_suite(tiny_suite)
    staged = suite.model_copy(update={"task": suite.task.model_copy(update={"rungs": PLAN})})
    where = {"model_source": Source("m", local=True), "dataset_source": Source("d", local=True)}
    plain = expand(suite, calibration_source=None, threads=1, **where)
    rung = expand(staged, calibration_source=None, threads=1, **where)
    assert plain[0].key == rung[0].key  # the baseline scores everything either way
    assert plain[1].key != rung[1].key and plain[1].group == rung[1].group
    assert "rungs" not in staged.task.identity() and rung[1].task.rungs == PLAN  # the worker reads it there
    with pytest.raises(ValidationError, match="ascend"):
        RungPlan(sizes=[150, 50], metric="f1", allowed_delta=-1.0)


@pytest.mark.parametrize(("text", "sizes"), [("50,150", (50, 150)), ("off", ()), ("OFF", ()), ("25", (25,))])
def test_rungs_flag(text: str, sizes: tuple[int, ...]) -> None:
    assert parse_rungs(text) == sizes


@pytest.mark.parametrize("text", ["150,50", "fifty", "0,10", "", "50,50"])
def test_bad_rungs_flag_is_one_line(text: str) -> None:
    with pytest.raises(BenchError, match="--rungs"):
        parse_rungs(text)


# --- the sensitivity strategy with fake trials ----------------------------------------------------------------


@dataclass
class FakeTrial:
    row: CompressorConfig
    accuracy: float
    objective: float
    feasible: bool
    rungs: RungTrail | None = None

    @property
    def ok(self) -> bool:
        return True

    @property
    def stopped(self) -> str | None:
        return self.rungs.stopped if self.rungs else None

    @property
    def complete(self) -> bool:
        return self.stopped is None

    @property
    def record(self) -> Any:
        return SimpleNamespace(rungs=self.rungs)


@dataclass
class FakeRunner:
    """Figures by what a candidate keeps: `figures(row)` gives (accuracy, objective)."""

    figures: Any
    trials: list[FakeTrial] = field(default_factory=list)
    budget: Any = field(default_factory=lambda: parse_budget("accuracy.f1:-1.0"))
    objective: Any = field(default_factory=lambda: parse_objective("latency.p50"))
    console: Console = field(default_factory=lambda: Console(file=open("/dev/null", "w")))  # noqa: SIM115
    baseline_value: float = 80.0

    def measure(self, row: CompressorConfig, family: str, why: str = "") -> FakeTrial:
        accuracy, objective = self.figures(row)
        trial = FakeTrial(row, accuracy, objective, accuracy >= 79.0)
        self.trials.append(trial)
        return trial


UNITS = [Unit(f"layer.{i}", f"layer\\.{i}") for i in range(4)]
CHAIN = CompressorConfig.model_validate(
    {"label": "pq", "chain": [{"name": "prune-magnitude", "config": {"sparsity": 0.9}}, {"name": "int8-dynamic"}]}
)


def test_a_chain_that_misses_the_budget_unquantized_is_measured_once_not_ranked() -> None:
    """Its loss comes from pruning: no layer kept in float can give it back."""

    def figures(row: CompressorConfig) -> tuple[float, float]:
        quantized = any(s.name == "int8-dynamic" for s in row.steps)
        return (70.0 if quantized else 71.0), (5.0 if quantized else 9.0)

    runner = FakeRunner(figures)
    sensitivity.search(runner, [family(CHAIN)], UNITS)  # type: ignore[arg-type]
    whys = [[s.name for s in t.row.steps] for t in runner.trials]
    assert whys == [["prune-magnitude", "int8-dynamic"], ["prune-magnitude"]]  # as written, then unquantized


def test_a_chain_whose_unquantized_form_keeps_the_budget_is_ranked() -> None:
    def figures(row: CompressorConfig) -> tuple[float, float]:
        kept = row.steps[-1].config.get("skip", []) if row.steps[-1].name == "int8-dynamic" else None
        if kept is None:
            return 80.0, 9.0
        return (75.0 + 5.0 * ("layer\\.2" in kept)), 5.0

    runner = FakeRunner(figures)
    sensitivity.search(runner, [family(CHAIN)], UNITS)  # type: ignore[arg-type]
    assert len(runner.trials) == 2 + len(UNITS) + 1  # as written, unquantized, each unit, then the top one
    assert runner.trials[-1].feasible and runner.trials[-1].row.steps[-1].config["skip"] == ["layer\\.2"]


def _trail(*deltas: tuple[int, float], stopped: bool = False) -> RungTrail:
    checks = [
        RungCheck(examples=n, delta=d, low=d - 3, high=d + 3, allowed_delta=-1.0, outside=False) for n, d in deltas
    ]
    return RungTrail(metric="f1", checks=checks, stopped="after 50 of 300 examples, ..." if stopped else None)


def test_gains_compare_trials_on_the_examples_both_scored() -> None:
    row = CompressorConfig(name="int8-dynamic")
    full = FakeTrial(row, 60.0, 5.0, False, _trail((50, -20.0), stopped=True))  # stopped at 50
    unit = FakeTrial(row, 78.0, 5.0, False, _trail((50, -4.0), (150, -2.5), (300, -2.0)))
    assert sensitivity.given_back(unit, full) == pytest.approx(16.0)  # at 50: -4 against -20
    done = FakeTrial(row, 76.0, 5.0, False, _trail((50, -5.0), (150, -4.0), (300, -4.0)))
    assert sensitivity.given_back(unit, done) == pytest.approx(2.0)  # both complete: accuracy over all
    older = FakeTrial(row, 78.0, 5.0, False, None)  # scored without rungs: nothing shared with a stopped trial
    assert sensitivity.given_back(older, full) is None


# --- near-ties ---------------------------------------------------------------------------------------------


def _timed(label: str, p50: float, samples: list[float]) -> Any:
    latency = {"forward": SimpleNamespace(samples_ms=samples, stats=SimpleNamespace(p50=p50))}
    record = SimpleNamespace(latency=latency, spec=label, status="ok")
    return SimpleNamespace(row=CompressorConfig(name="onnx", label=label), objective=p50, record=record)


def test_overlapping_intervals_are_near_ties() -> None:
    runner = FakeRunner(None)
    a = _timed("a", 10.0, [9.8, 10.0, 10.2, 10.1, 9.9] * 4)
    b = _timed("b", 10.05, [9.9, 10.05, 10.3, 10.0, 10.1] * 4)
    c = _timed("c", 20.0, [19.8, 20.0, 20.2, 20.1, 19.9] * 4)
    assert [t.row.label for t in near_ties([a, b, c], runner)] == ["a", "b"]  # type: ignore[arg-type]
    size_runner = FakeRunner(None, objective=parse_objective("size"))
    assert near_ties([a, b, c], size_runner) == [a]  # type: ignore[arg-type]


def test_near_ties_are_timed_again_interleaved_and_the_best_mean_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    a = _timed("a", 10.0, [9.8, 10.0, 10.2, 10.1, 9.9] * 4)
    b = _timed("b", 10.05, [9.9, 10.05, 10.3, 10.0, 10.1] * 4)
    again = {("a", 1): 10.4, ("b", 1): 9.6, ("b", 2): 9.7, ("a", 2): 10.3}  # b is faster when timed again
    order: list[tuple[str, int]] = []

    def run_spec(spec: tuple[str, int], baseline_key: None, why: str) -> tuple[Any, bool]:
        order.append(spec)
        value = again[spec]
        latency = {"forward": SimpleNamespace(samples_ms=[value], stats=SimpleNamespace(p50=value))}
        return SimpleNamespace(latency=latency, status="ok"), False

    monkeypatch.setattr(retime, "retimed", lambda spec, round_: (spec, round_))
    runner = FakeRunner(None)
    runner.run_spec = run_spec  # type: ignore[attr-defined]
    chosen, rows = settle([a, b], runner, rounds=2)  # type: ignore[arg-type]
    assert order == [("a", 1), ("b", 1), ("b", 2), ("a", 2)]  # A B, then B A
    assert chosen is b
    assert [(r.label, r.rounds, r.mean, r.chosen) for r in rows] == [
        ("a", [10.4, 10.3], pytest.approx(10.35), False),
        ("b", [9.6, 9.7], pytest.approx(9.65), True),
    ]
    assert settle([a, b], runner, rounds=0) == (a, [])


def test_a_retimed_spec_keeps_the_configuration_under_its_own_key(tiny_run: Any) -> None:
    spec: RunSpec = tiny_run.spec
    again = retimed(spec, 2)
    assert again.retiming == 2 and again.key == f"{spec.key}__retime2"
    assert again.model_dump(exclude={"retiming", "key"}) == spec.model_dump(exclude={"retiming", "key"})
    with pytest.raises(ValueError):
        retimed(spec, 0)


# --- what the summary says ------------------------------------------------------------------------------------


def test_tune_md_says_where_candidates_stopped_and_how_ties_were_settled(tmp_path: Path) -> None:
    def trial(label: str, stopped: str | None, examples: int, feasible: bool) -> TrialRow:
        return TrialRow(
            label=label, family=label, key=label, settings={"name": "onnx"}, status="ok", accuracy=70.0,
            delta=-10.0, objective=5.0, feasible=feasible, on_front=False, reused=False, why="as written",
            examples=examples, stopped=stopped,
        )  # fmt: skip

    summary = TuneSummary(
        suite="qa", budget="accuracy.f1:-1.0", metric="accuracy.f1", objective="latency.p50",
        strategy="sensitivity", seed=0, baseline_accuracy=80.0, baseline_objective=10.0,
        tuning=TuningExamples(split="validation", offset=1000, count=300, ids=[], evaluation_ids_shared=0),
        rungs=[50, 150], trials=[trial("p", "after 50 of 300 examples, ...", 50, False), trial("a", None, 300, True)],
        retimed=[Retiming(label="a", quick=5.0, rounds=[5.1, 4.9], mean=5.0, chosen=True)],
        chosen="a", stopped=None, verdict=None,
    )  # fmt: skip
    text = markdown(summary)
    assert "judged after 50 and 150 tuning examples" in text and "1 of 2 candidates stopped early" in text
    assert "| no, stopped at 50 |" in text
    assert "| `a` | 5.000 | 5.100 | 4.900 | 5.000 | ✓ |" in text
    assert TuneSummary.model_validate_json(summary.model_dump_json()) == summary


def test_a_repeated_timing_measures_latency_only(tiny_run: Any, tmp_path: Path) -> None:
    from bench.launchers.single_run import run_one

    folder = tmp_path / "results"
    folder.mkdir()
    record = run_one(retimed(tiny_run.spec, 1), folder, None)
    assert record.status.value == "ok", record.error
    assert record.latency["forward"].samples_ms and record.accuracy is None and record.agreement is None
    assert record.spec.retiming == 1 and any("repeated timing 1" in note for note in record.notes)
    assert (folder / f"{tiny_run.spec.key}__retime1.json").is_file()


# --- end to end on the real model ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.real_data
def test_tune_stops_a_hopeless_candidate_and_settles_a_tie(tmp_path: Path, shared_data: Path) -> None:
    import json

    from bench.core.records import load_record

    from .conftest import write_suite
    from .test_cli import bench

    suite = write_suite(
        tmp_path / "real.yaml",
        shared_data / "models" / "minilm-l6-squad",
        shared_data,
        name="real",
        task={"name": "qa", "dataset": "squad", "limit": 20, "tuning": {"limit": 60}},
        compressors=[
            {"name": "baseline"},
            {"name": "onnx", "label": "onnx-a"},
            {"name": "onnx", "label": "onnx-b"},
            {"name": "prune-structured", "config": {"heads": 0.5, "ffn": 0.75}},
        ],
        batch_sizes=[1],
        sequence_lengths=[384],
        measurement={"threads": 2, "min_duration_s": 1, "quick_min_duration_s": 1, "quick_warmup": 2},
    )
    out, results = tmp_path / "out", tmp_path / "results"
    args = ["tune", str(suite), "--budget", "accuracy.f1:-5.0", "--rungs", "20", "--retime-rounds", "1"]
    result = bench(*args, "--results-dir", str(results), "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "tune.json").read_text())
    assert summary["rungs"] == [20]
    trials = {t["family"]: t for t in summary["trials"]}
    pruned = trials["prune-structured"]
    assert pruned["examples"] == 20 and "after 20 of 60 examples" in pruned["stopped"] and not pruned["on_front"]
    assert not pruned["feasible"] and pruned["objective"] is not None  # timed, so the strategy can weigh it
    record = load_record(next(results.rglob(f"{pruned['key']}.json")))
    assert record.rungs is not None and record.rungs.stopped_at == 20 and record.accuracy.n_examples == 20
    for label in ("onnx-a", "onnx-b"):
        assert trials[label]["examples"] == 60 and trials[label]["feasible"] and trials[label]["stopped"] is None
    assert summary["chosen"].startswith("onnx-") and summary["verdict"]["holds_at_point"]
    retimed_runs = sorted(p.name for p in results.rglob("*__retime1.json"))
    if summary["retimed"]:  # the two identical rows' quick latencies overlapped, as they nearly always do
        assert {r["label"] for r in summary["retimed"]} == {trials["onnx-a"]["label"], trials["onnx-b"]["label"]}
        assert sum(r["chosen"] for r in summary["retimed"]) == 1 and len(retimed_runs) == 2
        chosen = next(r for r in summary["retimed"] if r["chosen"])
        assert chosen["label"] == summary["chosen"]
        assert "Near-tie in quick latency.p50" in (out / "tune.md").read_text()
    else:
        assert retimed_runs == []
    report = bench("report", str(next(results.glob("*/real-tune"))))  # stopped runs and re-timings included
    assert report.returncode == 0 and "prune-structured" in report.stdout, report.stdout + report.stderr
