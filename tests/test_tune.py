"""`bench tune`: budgets and objectives, tuning examples disjoint from evaluation ones, the search spaces
plugins declare, both strategies, resuming, and the confirmed verdict."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bench.config import load_suite
from bench.core.errors import BenchError, ConfigError
from bench.core.settings import Choice, FloatRange, IntRange
from bench.core.suite import CompressorConfig, TaskConfig
from bench.tune import optuna_search
from bench.tune.goals import parse_budget, parse_objective
from bench.tune.layers import linear_layers, module_pattern, units
from bench.tune.outcome import on_front, tuned_suite
from bench.tune.space import families, family

from .conftest import WORDS, build_tiny_bert, write_suite
from .test_cli import bench

# --- budgets and objectives -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "floor"),
    [
        ("accuracy.f1:-1.0", "delta", 79.0),
        ("accuracy.f1:+0.5", "delta", 80.5),
        ("agreement.exact_agreement:90", "floor", 90.0),
        ("accuracy.f1:99%", "ratio", 79.2),
        ("acc.f1:99.9%", "ratio", 79.92),
    ],
)
def test_budget_forms(text: str, kind: str, floor: float) -> None:
    budget = parse_budget(text)
    assert budget.kind == kind
    assert budget.floor(80.0) == pytest.approx(floor)
    assert budget.holds(80.0, floor) and not budget.holds(80.0, floor - 0.01)
    assert not budget.holds(80.0, None)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("f1-1", "expected METRIC"),
        ("latency.p50:-1", "accuracy.NAME or agreement.NAME"),
        ("accuracy.f1:-5%", "unsigned"),
        ("accuracy.f1:120%", "between 0% and 100%"),
        ("nonsense.f1:-1", "accuracy.NAME"),
    ],
)
def test_bad_budgets_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(BenchError, match=says):
        parse_budget(text)


def test_objectives() -> None:
    assert parse_objective("latency.p50").cost(10.0) == 10.0
    assert parse_objective("throughput").cost(10.0) == -10.0  # higher is better: minimise its negation
    assert parse_objective("size").name == "size"
    with pytest.raises(BenchError, match="choose one of"):
        parse_objective("accuracy.f1")


# --- tuning examples ---------------------------------------------------------------------------------------


def test_tuning_slice_follows_the_evaluated_examples() -> None:
    task = TaskConfig(name="qa", dataset="squad", limit=1000)
    tuning = task.tuning_slice()
    assert (tuning.split, tuning.offset, tuning.limit) == ("validation", 1000, 300)
    assert task.tuning_slice(evaluated=1200).offset == 1200  # a larger --limit moves the slice further
    other = TaskConfig.model_validate({"name": "qa", "dataset": "squad", "tuning": {"split": "train", "limit": 50}})
    assert (other.tuning_slice().split, other.tuning_slice().offset) == ("train", 0)


def test_tuning_slice_refuses_overlap() -> None:
    whole = TaskConfig(name="qa", dataset="squad")
    with pytest.raises(ConfigError, match="whole 'validation' split"):
        whole.tuning_slice()
    early = TaskConfig.model_validate({"name": "qa", "dataset": "squad", "limit": 100, "tuning": {"offset": 50}})
    with pytest.raises(ConfigError, match="overlaps the 100 evaluated"):
        early.tuning_slice()


def test_offset_changes_the_run_key_only_when_set() -> None:
    task = TaskConfig(name="qa", dataset="squad", limit=10)
    assert "offset" not in task.identity() and "tuning" not in task.identity()
    assert task.tuning_slice().identity()["offset"] == 10


# --- search spaces -----------------------------------------------------------------------------------------


def test_plugins_declare_their_spaces() -> None:
    dynamic = family(CompressorConfig(name="int8-dynamic"))
    assert isinstance(dynamic.settings["backend"].dimension, Choice)
    assert dynamic.layer_field == "skip"
    pruned = family(CompressorConfig(name="prune-structured"))
    assert isinstance(pruned.settings["heads"].dimension, FloatRange)
    assert isinstance(family(CompressorConfig(name="distill")).settings["num_layers"].dimension, IntRange)
    assert family(CompressorConfig(name="bf16")).settings == {}


def test_chains_are_searchable_and_candidates_are_labelled_rows() -> None:
    chain = CompressorConfig.model_validate(
        {"label": "p+q", "chain": [{"name": "prune-magnitude"}, {"name": "int8-dynamic"}]}
    )
    fam = family(chain)
    assert {"prune-magnitude.sparsity", "int8-dynamic.backend"} <= set(fam.settings)
    row = fam.candidate({"prune-magnitude.sparsity": 0.4, "int8-dynamic.backend": "onnxruntime"}, ["x"])
    assert row.chain is not None
    assert row.chain[0].config == {"sparsity": 0.4}
    assert row.chain[1].config == {"backend": "onnxruntime", "skip": ["x"]}
    assert row.display_name.startswith("p+q-t") and row == fam.candidate(
        {"prune-magnitude.sparsity": 0.4, "int8-dynamic.backend": "onnxruntime"}, ["x"]
    )
    unquantized = fam.unquantized()
    assert unquantized is not None and unquantized.name == "prune-magnitude" and unquantized.chain is None
    assert family(CompressorConfig(name="int8-dynamic")).unquantized() is None
    bad = family(CompressorConfig(name="int8-dynamic")).candidate({"backend": "torchao"}, ["x"])
    assert "skip" in (family(CompressorConfig(name="int8-dynamic")).problem(bad) or "")


def test_unknown_rows_are_one_line(tiny_suite: Path) -> None:
    suite = load_suite(tiny_suite)
    with pytest.raises(BenchError, match="no such row or compressor"):
        families(suite, ["int9"])


# --- layers ------------------------------------------------------------------------------------------------


def test_units_from_the_safetensors_header(tiny_model_dir: Path) -> None:
    layers = linear_layers(tiny_model_dir)
    assert "qa_outputs" in layers and "bert.encoder.layer.1.output.dense" in layers
    assert not any("embeddings" in name for name in layers)
    blocks = units(layers, "block")
    assert [u.name for u in blocks] == ["bert.encoder.layer.0", "bert.encoder.layer.1", "qa_outputs"]
    assert len(units(layers, "layer")) == len(layers)


def test_unit_patterns_match_every_runtimes_names() -> None:
    import re

    pattern = module_pattern("bert.encoder.layer.1")
    for name in (
        "bert.encoder.layer.1.output.dense",  # PyTorch module
        "/bert/encoder/layer.1/output/dense/MatMul",  # ONNX node
        "__module.inner.bert.encoder.layer.1.output.dense/aten::linear/MatMul",  # OpenVINO operation
    ):
        assert re.search(pattern, name), name
    assert not re.search(pattern, "bert.encoder.layer.11.output.dense")


# --- the front and the suite snippet -----------------------------------------------------------------------


def test_pareto_front() -> None:
    def trial(acc: float, complete: bool = True) -> Any:
        return SimpleNamespace(ok=True, complete=complete, accuracy=acc)

    trials = [trial(80.0), trial(79.0), trial(78.0), trial(79.5), trial(90.0, complete=False)]
    cost = {0: 10.0, 1: 5.0, 2: 6.0, 3: 5.0, 4: 1.0}
    assert on_front(trials, cost) == {0, 3}  # 1 and 2 are beaten by 3; 4 stopped at a rung, on fewer examples


def test_tuned_suite_reproduces_from_elsewhere(tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "data").symlink_to(tiny_squad_dir)
    path = write_suite(suites / "s.yaml", tiny_model_dir, tiny_squad_dir)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "data_dir": "data"}))
    row = CompressorConfig(name="int8-dynamic", label="chosen", config={"skip": ["qa_outputs"]})
    out = tmp_path / "reports" / "tuned"
    out.mkdir(parents=True)
    text = tuned_suite(path, row, out, "made by a test")
    raw = yaml.safe_load(text)
    assert text.startswith("# made by a test\n")
    assert raw["compressors"][1] == {"name": "int8-dynamic", "label": "chosen", "config": {"skip": ["qa_outputs"]}}
    assert (out / raw["data_dir"]).resolve() == (suites / "data").resolve()
    (out / "tuned.yaml").write_text(text)
    assert load_suite(out / "tuned.yaml").compressors[1].config == {"skip": ["qa_outputs"]}


# --- Optuna ------------------------------------------------------------------------------------------------


class ScriptedRunner:
    """A stand-in for TrialRunner whose figures are a fixed function of the settings (no process)."""

    def __init__(self) -> None:
        self.budget = parse_budget("accuracy.f1:-1.0")
        self.objective = parse_objective("latency.p50")
        self.baseline_value = 80.0
        self.rows: list[str] = []

    def measure(self, row: CompressorConfig, family: str, why: str = "") -> Any:
        self.rows.append(row.display_name)
        steps = {s.name: s.config for s in row.steps}
        sparsity = float(steps.get("prune-magnitude", {}).get("sparsity", 0.5))
        return SimpleNamespace(ok=True, accuracy=80.0 - 4 * sparsity, objective=10.0 - 5 * sparsity)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_optuna_is_reproducible_with_a_seed(sampler: optuna_search.Sampler) -> None:
    rows = [
        CompressorConfig(name="prune-magnitude"),
        CompressorConfig.model_validate({"label": "pq", "chain": [{"name": "prune-magnitude"}, {"name": "fp16"}]}),
    ]
    fams = [family(r) for r in rows]
    runs = []
    for seed in (7, 7, 8):
        runner = ScriptedRunner()
        optuna_search.search(runner, fams, sampler, seed, trials=8)  # type: ignore[arg-type]
        runs.append(runner.rows)
    assert runs[0] == runs[1] and len(set(runs[0])) == 8
    assert runs[0] != runs[2]


# --- end to end --------------------------------------------------------------------------------------------


def _outlier_model(folder: Path) -> Path:
    """A tiny BERT whose qa_outputs holds a huge weight on a feature that is always zero: harmless in float,
    but int8 quantization gives every other weight of the layer a zero, so its answers are destroyed."""

    def outlier(model: Any) -> None:
        norm = model.bert.encoder.layer[1].output.LayerNorm
        norm.weight[5] = 0.0
        norm.bias[5] = 0.0
        model.qa_outputs.weight[:, 5] = 1e4

    return build_tiny_bert(folder, outlier)


def _questions(prefix: str, n: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    paragraphs = []
    for i in range(n):
        words = rng.sample(WORDS, 8)
        context = " ".join(words) + "."
        qa = {
            "id": f"{prefix}{i}",
            "question": f"what {words[0]} {words[1]}?",
            "answers": [{"text": words[3], "answer_start": context.index(words[3])}],
        }
        paragraphs.append({"context": context, "qas": [qa]})
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}


@pytest.mark.slow
def test_sensitivity_finds_the_layer_that_breaks_int8(tmp_path: Path) -> None:
    model = _outlier_model(tmp_path / "model")
    data = tmp_path / "data"
    (data / "squad").mkdir(parents=True)
    (data / "squad" / "dev-v1.1.json").write_text(json.dumps(_questions("dev", 40, 0)))
    (data / "squad" / "train-subset-v1.1.json").write_text(json.dumps(_questions("train", 10, 1)))
    task = {"name": "qa", "dataset": "squad", "limit": 10, "tuning": {"limit": 20}, "config": {"doc_stride": 32}}
    suite = write_suite(tmp_path / "s.yaml", model, data, task=task)
    results, out = tmp_path / "results", tmp_path / "out"
    args = ("tune", str(suite), "--budget", "agreement.exact_agreement:90", "--results-dir", str(results))
    first = bench(*args, "-o", str(out))
    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads((out / "tune.json").read_text())
    trials = summary["trials"]
    assert trials[0]["why"] == "as the suite writes it" and not trials[0]["feasible"]  # all int8: destroyed
    chosen = next(t for t in trials if t["label"] == summary["chosen"])
    assert chosen["settings"]["config"]["skip"] == [module_pattern("qa_outputs")]
    assert summary["verdict"]["holds_at_point"] and summary["verdict"]["evaluation_examples"] == 10
    # tuning ids and evaluation ids are disjoint, and both are what the suite says
    assert summary["tuning"]["ids"] == [f"dev{i}" for i in range(10, 30)]
    assert summary["tuning"]["evaluation_ids_shared"] == 0
    tuned = load_suite(out / "tuned.yaml")
    assert tuned.compressors[1].config["skip"] == [module_pattern("qa_outputs")]
    # an interrupted (here: repeated) search measures nothing it stored
    records = sorted(p.name for p in (results).rglob("*.json"))
    again = bench(*args, "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (results).rglob("*.json")) == records
    resumed = json.loads((out / "tune.json").read_text())
    assert all(t["reused"] for t in resumed["trials"]) and resumed["chosen"] == summary["chosen"]
    # the search is an ordinary results folder: `bench report` shows it
    report = bench("report", str(next(results.glob("*/tiny-tune"))))
    assert report.returncode == 0 and summary["chosen"] in report.stdout


@pytest.mark.slow
def test_limits_stop_the_search_and_bad_input_is_one_line(tiny_suite: Path, tmp_path: Path) -> None:
    bad = bench("tune", str(tiny_suite), "--budget", "f1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--budget" in bad.stderr
    whole = bench("tune", str(tiny_suite), "--budget", "accuracy.f1:-1")  # evaluates the whole split
    assert whole.returncode == 2 and "task.tuning" in whole.stderr
    budget = bench("tune", str(tiny_suite), "--budget", "accuracy.f1:-1", "--time-budget", "soon")
    assert budget.returncode == 2 and "--time-budget" in budget.stderr
