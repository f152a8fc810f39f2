"""Random-weight models from the shipped architecture configs, with tokenizers trained on local text."""

import json
from pathlib import Path

import pytest

from bench.core.architectures import architecture_config, shipped_architectures
from bench.core.errors import ConfigError
from bench.random_models import materialize

from .conftest import TINY_MARIAN, TINY_T5


def test_shipped_configs_have_the_real_shapes() -> None:
    assert shipped_architectures() == [
        "bart-base",
        "bigbird-pegasus-large-arxiv",
        "bigbird-roberta-base",
        "led-base-16384",
        "longformer-base-4096",
        "opus-mt-en-de",
        "t5-small",
    ]
    marian = architecture_config("opus-mt-en-de")
    assert (marian["vocab_size"], marian["d_model"], marian["encoder_layers"], marian["pad_token_id"]) == (
        58101,
        512,
        6,
        58100,
    )
    t5 = architecture_config("t5-small")
    assert (t5["vocab_size"], t5["d_model"], t5["num_layers"], t5["num_heads"]) == (32128, 512, 6, 8)
    with pytest.raises(ConfigError, match="unknown architecture 'gpt9'"):
        architecture_config("gpt9")


def test_tiny_marian_keeps_marian_special_token_layout(tiny_text_dir: Path, tmp_path: Path) -> None:
    folder, facts = materialize("opus-mt-en-de", [str(tiny_text_dir)], 0, tmp_path, TINY_MARIAN)
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    vocab = TINY_MARIAN["vocab_size"]
    assert facts["weights"] == "random" and facts["tokenizer_vocab"] == len(tokenizer) == vocab
    # as in opus-mt: </s> is 0, <unk> 1, <pad> the last id and the decoder start
    assert (tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id) == (0, 1, vocab - 1)
    assert model.config.decoder_start_token_id == model.config.pad_token_id == vocab - 1
    assert model.get_input_embeddings().weight.shape == (vocab, TINY_MARIAN["d_model"])
    ids = tokenizer("the river flows")["input_ids"]
    assert ids[-1] == 0 and "token_type_ids" not in tokenizer("x")
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the river flows"
    again, cached = materialize("opus-mt-en-de", [str(tiny_text_dir)], 0, tmp_path, TINY_MARIAN)
    assert again == folder and cached["cached"] is True
    assert json.loads((folder / "build.json").read_text())["seed"] == 0


def test_tiny_t5_keeps_t5_special_token_layout(tiny_text_dir: Path, tmp_path: Path) -> None:
    folder, facts = materialize("t5-small", [str(tiny_text_dir)], 0, tmp_path, TINY_T5)
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert model.config.decoder_start_token_id == 0
    assert facts["model_type"] == "t5" and facts["parameters"] == sum(p.numel() for p in model.parameters())


def test_seed_fixes_the_weights(tiny_text_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    a, _ = materialize("opus-mt-en-de", [str(tiny_text_dir)], 0, tmp_path / "a", TINY_MARIAN)
    b, _ = materialize("opus-mt-en-de", [str(tiny_text_dir)], 0, tmp_path / "b", TINY_MARIAN)
    c, _ = materialize("opus-mt-en-de", [str(tiny_text_dir)], 1, tmp_path / "c", TINY_MARIAN)
    wa, wb, wc = (load_file(str(f / "model.safetensors")) for f in (a, b, c))
    name = "model.encoder.layers.0.fc1.weight"
    assert (wa[name] == wb[name]).all() and not (wa[name] == wc[name]).all()
