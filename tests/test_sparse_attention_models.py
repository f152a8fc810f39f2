"""The sparse-attention architectures: random builds of their real layouts load, run and are timed on CPU."""

from pathlib import Path
from typing import Any

import pytest
import torch

from bench.core.architectures import architecture_config
from bench.core.latency import LatencySettings
from bench.core.registry import TASKS
from bench.core.shape import Shape
from bench.core.sources import Source
from bench.random_models import materialize

SETTINGS = LatencySettings(warmup=1, min_iterations=3, min_duration_s=0.0, max_iterations=3, max_duration_s=60.0)
SEQ2SEQ_SMALL = {
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "vocab_size": 400,
}
ENCODER_SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
TINY: dict[str, dict[str, Any]] = {
    # windows and blocks small enough that 256-token inputs are long for them
    "led-base-16384": {**SEQ2SEQ_SMALL, "num_hidden_layers": 2, "attention_window": [32, 32]},
    "bigbird-pegasus-large-arxiv": {**SEQ2SEQ_SMALL, "block_size": 16, "num_random_blocks": 2},
    "longformer-base-4096": {**ENCODER_SMALL, "attention_window": [32, 32], "vocab_size": 400},
    "bigbird-roberta-base": {**ENCODER_SMALL, "block_size": 16, "num_random_blocks": 2, "vocab_size": 400},
}


def test_the_sparse_configs_keep_their_real_patterns() -> None:
    assert architecture_config("led-base-16384")["attention_window"] == [1024] * 6
    assert architecture_config("longformer-base-4096")["attention_window"] == [512] * 12
    pegasus = architecture_config("bigbird-pegasus-large-arxiv")
    assert (pegasus["attention_type"], pegasus["block_size"], pegasus["d_model"]) == ("block_sparse", 64, 1024)
    assert architecture_config("bigbird-roberta-base")["attention_type"] == "block_sparse"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["led-base-16384", "bigbird-pegasus-large-arxiv"])
def test_sparse_summarizers_load_generate_and_are_timed(name: str, tiny_text_dir: Path, tmp_path: Path) -> None:
    folder, facts = materialize(name, [str(tiny_text_dir)], 0, tmp_path, TINY[name])
    task = TASKS.load("summarization").from_mapping({"latency_new_tokens": 4})
    model = task.load_model(Source(str(folder), local=True), "cpu")
    assert facts["weights"] == "random" and model.attention_implementation() == "eager"
    long_text = " ".join(["the river flows past a city and people walk over the old bridge every day"] * 20)
    features = task.encode(model.tokenizer, [{"id": "a", "source": long_text, "reference": "x"}], 256)
    batch = task.batches(features, 1)[0]
    assert batch["input_ids"].shape[1] == 256
    generated = model.generate(batch, {"max_new_tokens": 4, "min_new_tokens": 4, "num_beams": 1, "do_sample": False})
    assert generated.shape[0] == 1 and generated.shape[1] >= 4
    timings = task.latency(model, [batch], SETTINGS, Shape(batch_size=1, sequence_length=256))
    assert {"generate", "first_token", "per_token"} <= set(timings)
    assert all(t.stats.n == 3 and t.stats.p50 > 0 for t in timings.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["longformer-base-4096", "bigbird-roberta-base"])
def test_sparse_qa_encoders_load_answer_and_are_timed(name: str, tiny_squad_dir: Path, tmp_path: Path) -> None:
    folder, _ = materialize(name, [str(tiny_squad_dir / "squad")], 0, tmp_path, TINY[name])
    task = TASKS.load("qa").from_mapping({"doc_stride": 64})
    model = task.load_model(Source(str(folder), local=True), "cpu")
    examples = task.load_examples(Source(str(tiny_squad_dir / "squad" / "dev-v1.1.json"), local=True), "validation", 4)
    features = task.encode(model.tokenizer, examples, 256)
    batch = task.batches(features, 1)[0]
    separators = model.tokenizer.sep_token_id
    assert int((batch["input_ids"][0] == separators).sum()) == (3 if name.startswith("longformer") else 2)
    out = model.forward(batch)
    assert out["start_logits"].shape == (1, 256) and torch.isfinite(out["start_logits"]).all()
    timings = task.latency(model, [batch], SETTINGS, Shape(batch_size=1, sequence_length=256))
    assert timings["forward"].stats.n == 3
    expected = "sliding window of 32 tokens" if name.startswith("longformer") else "block sparse (16-token blocks"
    assert str(model.attention_pattern()).startswith(expected)
    result = task.evaluate(model, examples, features, 2)  # trimmed to the longest window: BigBird may go full
    assert len(result.predictions) == len(examples)


@pytest.mark.slow
def test_bigbird_on_short_inputs_says_it_ran_full_attention(tiny_squad_dir: Path, tmp_path: Path) -> None:
    name = "bigbird-roberta-base"
    folder, _ = materialize(name, [str(tiny_squad_dir / "squad")], 0, tmp_path, TINY[name])
    task = TASKS.load("qa").from_mapping({"doc_stride": 16})
    model = task.load_model(Source(str(folder), local=True), "cpu")
    examples = task.load_examples(Source(str(tiny_squad_dir / "squad" / "dev-v1.1.json"), local=True), "validation", 1)
    assert str(model.attention_pattern()).startswith("block sparse")
    model.forward(task.batches(task.encode(model.tokenizer, examples, 64), 1)[0])  # 64 tokens: below 9 blocks
    assert str(model.attention_pattern()).startswith("full (block-sparse switched off")
