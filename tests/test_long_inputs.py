"""Long inputs from real text, and cost against input length: the growth-exponent fit and its report."""

from pathlib import Path

import pytest

from bench.core.records import Execution, LoadedRecords, load_record
from bench.core.registry import TASKS
from bench.core.sources import Source
from bench.report.publish import publish
from bench.report.scaling import growth_exponent, scaling_series
from bench.report.table import build_tables
from bench.tasks.long_inputs import FOLLOWING, attach_following, filled, following_texts
from tests.golden.regenerate import GOLDEN

LENGTHS = [512, 1024, 2048, 4096]


def test_quadratic_growth_fits_an_exponent_of_two() -> None:
    assert growth_exponent(LENGTHS, [3e-6 * n**2 for n in LENGTHS]) == pytest.approx(2.0)


def test_linear_growth_fits_an_exponent_of_one() -> None:
    assert growth_exponent(LENGTHS, [0.02 * n for n in LENGTHS]) == pytest.approx(1.0)


def test_the_fit_describes_the_longest_lengths() -> None:
    # a linear part that dominates short inputs and a quadratic one that dominates long ones
    lengths = [*LENGTHS, 8192, 16384, 32768]
    values = [5000 * n + 0.5 * n**2 for n in lengths]
    overall, longest = growth_exponent(lengths, values, longest=len(lengths)), growth_exponent(lengths, values)
    assert overall is not None and longest is not None
    assert 1.0 < overall < longest < 2.0 and longest > 1.5


def test_noisy_growth_and_degenerate_inputs() -> None:
    noise = [1.03, 0.97, 1.02, 0.99]
    fitted = growth_exponent(LENGTHS, [n**1.5 * e for n, e in zip(LENGTHS, noise, strict=True)], longest=4)
    assert fitted == pytest.approx(1.5, abs=0.05)
    assert growth_exponent([512, 512], [1.0, 2.0]) is None
    assert growth_exponent([512], [1.0]) is None
    assert growth_exponent([512, 1024], [1.0, 0.0]) is None


def test_following_texts_wrap_and_skip_repeats() -> None:
    assert following_texts(["a", "b", "c"], 3) == [["b", "c"], ["c", "a"], ["a", "b"]]
    assert following_texts(["a", "a", "b"], 2) == [["b"], ["b"]]  # the same paragraph twice counts once
    assert following_texts(["a", "b", "c", "d"], 1, keep=2) == [["b", "c"]]


def test_filled_stops_at_the_target_or_when_text_runs_out() -> None:
    assert filled("aa", ["bbb", "cc", "d"], len, 5, " ") == "aa bbb"
    assert filled("aa", ["b"], len, 50, " ") == "aa b"
    examples = [{"id": str(i), "text": t} for i, t in enumerate(["x", "y", "z"])]
    attached = attach_following(examples, "text", 1)
    assert len(attached) == 1 and attached[0][FOLLOWING] == ["y", "z"]


def test_summaries_of_filled_articles_hold_the_whole_length(tiny_text_dir: Path, tmp_path: Path) -> None:
    from bench.random_models import materialize

    from .conftest import TINY_T5

    folder, _ = materialize("t5-small", [str(tiny_text_dir)], 0, tmp_path, TINY_T5)
    source = Source(str(tiny_text_dir / "news.jsonl"), local=True)
    plain = TASKS.load("summarization").from_mapping({})
    filling = TASKS.load("summarization").from_mapping({"fill_to_length": True})
    tokenizer = plain.load_model(Source(str(folder), local=True), "cpu").tokenizer
    examples = plain.load_examples(source, "test", 2)
    short = plain.encode(tokenizer, examples, 200)
    long = filling.encode(tokenizer, filling.load_examples(source, "test", 2), 200)  # 2 articles, filled from 10
    assert max(len(ids) for ids in short.input_ids) < 200
    assert all(len(ids) == 200 for ids in long.input_ids)
    assert long.references == short.references
    assert long.input_ids[0][: len(short.input_ids[0]) - 1] == short.input_ids[0][:-1]  # its own article first


def test_filled_qa_contexts_give_one_full_window_and_answers_inside_them(
    tiny_model_dir: Path, tiny_squad_dir: Path
) -> None:
    source = Source(str(tiny_squad_dir / "squad" / "dev-v1.1.json"), local=True)
    plain = TASKS.load("qa").from_mapping({"doc_stride": 32})
    filling = TASKS.load("qa").from_mapping({"doc_stride": 32, "fill_context_to_length": True})
    model = plain.load_model(Source(str(tiny_model_dir), local=True), "cpu")
    examples = filling.load_examples(source, "validation", 2)
    features = filling.encode(model.tokenizer, examples, 64)
    assert len(features) == len(examples)  # one window each
    assert (features.inputs["attention_mask"].sum(axis=1) == 64).all()  # full of real text, no padding
    for example, context in zip(examples, features.contexts, strict=True):
        assert context.startswith(example["context"])
    result = filling.evaluate(model, examples, features, 4)
    assert {"exact_match", "f1"} <= set(result.metrics)
    for row, context in zip(result.predictions, features.contexts, strict=True):
        assert row["prediction"] in context


def test_timed_inputs_count_their_real_tokens(tiny_model_dir: Path, tiny_squad_dir: Path) -> None:
    from bench.worker import real_tokens_per_input

    source = Source(str(tiny_squad_dir / "squad" / "dev-v1.1.json"), local=True)
    plain = TASKS.load("qa").from_mapping({"doc_stride": 32})
    filling = TASKS.load("qa").from_mapping({"doc_stride": 32, "fill_context_to_length": True})
    assert filling.fills_inputs() and not plain.fills_inputs()
    tokenizer = plain.load_model(Source(str(tiny_model_dir), local=True), "cpu").tokenizer
    examples = plain.load_examples(source, "validation", 2)
    padded = plain.batches(plain.encode(tokenizer, examples, 256), 2)
    full = filling.batches(filling.encode(tokenizer, filling.load_examples(source, "validation", 2), 64), 2)
    assert real_tokens_per_input(full) == 64.0
    real = real_tokens_per_input(padded)
    assert real is not None and 0 < real < 256
    assert real_tokens_per_input([{"input_ids": [[1, 2]]}]) is None  # no mask: unknown, not guessed


def test_the_report_fits_each_series_and_draws_it(tmp_path: Path) -> None:
    template = load_record(GOLDEN / "records" / "bf16__cpu__bs1__seq256__bf54064e12.json")
    records = []
    for attention, power in (("eager", 2.0), ("sdpa", 1.0)):
        for n in LENGTHS:
            spec = template.spec.model_copy(
                update={
                    "shape": template.spec.shape.model_copy(update={"sequence_length": n}),
                    "group": f"g{n}",
                    "key": f"{attention}{n}",
                }
            )
            latency = {
                name: part.model_copy(update={"stats": part.stats.model_copy(update={"p50": 1e-3 * n**power})})
                for name, part in template.latency.items()
            }
            records.append(
                template.model_copy(
                    update={"spec": spec, "latency": latency, "execution": Execution(attention=attention)}
                )
            )
    by_task = scaling_series(build_tables(records))
    series = {s.label.split(" · ")[-1]: s for s in by_task["summarization"]}
    assert series["eager"].lengths == LENGTHS
    assert series["eager"].exponent(series["eager"].latency_ms) == pytest.approx(2.0)
    assert series["sdpa"].exponent(series["sdpa"].latency_ms) == pytest.approx(1.0)
    written = {p.name for p in publish(LoadedRecords(records), tmp_path / "report", ("md", "html"), generated="now")}
    assert {"scaling-summarization-latency.svg", "scaling-summarization-memory.svg"} <= written
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "## Cost against input length" in readme and "| 2.00 |" in readme and "| 1.00 |" in readme
    assert "Cost against input length" in (tmp_path / "report" / "index.html").read_text()


def test_relative_positions_have_no_length_limit_but_absolute_ones_do() -> None:
    from bench.core.errors import ConfigError
    from bench.core.suite import SuiteConfig
    from bench.validate import check_model

    def suite(architecture: str) -> SuiteConfig:
        return SuiteConfig.model_validate(
            {
                "name": "s",
                "model": {"architecture": architecture},
                "task": {"name": "summarization", "dataset": "cnn_dailymail"},
                "compressors": [{"name": "baseline"}],
                "sequence_lengths": [4096],
            }
        )

    check_model(suite("t5-small"), Source.built("t5-small"))  # n_positions 512 describes training only
    check_model(suite("led-base-16384"), Source.built("led-base-16384"))
    with pytest.raises(ConfigError, match="above the model's 1024 positions"):
        check_model(suite("bart-base"), Source.built("bart-base"))
