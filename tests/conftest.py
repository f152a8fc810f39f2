"""Shared fixtures: a tiny BERT QA model built from a config, tiny SQuAD files, and a suite using them."""

from __future__ import annotations

import json
import os
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("BENCH_DATA_DIR") or REPO.parent / "shared" / "bench-data")
# Tests name their data directories themselves; an inherited one would override them.
os.environ.pop("BENCH_DATA_DIR", None)

WORDS = [
    "the",
    "a",
    "an",
    "of",
    "in",
    "on",
    "at",
    "to",
    "is",
    "was",
    "by",
    "for",
    "with",
    "and",
    "or",
    "who",
    "what",
    "when",
    "where",
    "which",
    "how",
    "many",
    "year",
    "city",
    "river",
    "paris",
    "france",
    "london",
    "england",
    "built",
    "founded",
    "tower",
    "bridge",
    "museum",
    "capital",
    "largest",
    "people",
    "million",
]

CONTEXTS = [
    (
        "Paris is the capital of France. The Eiffel tower was built in 1889 by Gustave Eiffel.",
        [
            ("What is the capital of France?", "Paris"),
            ("When was the Eiffel tower built?", "1889"),
            ("Who built the tower?", "Gustave Eiffel"),
        ],
    ),
    (
        "London is the largest city in England. The Thames river flows through London. "
        "About 9 million people live there.",
        [
            ("What river flows through London?", "Thames"),
            ("How many people live in London?", "9 million"),
            ("What is the largest city in England?", "London"),
        ],
    ),
]


def squad_json(contexts: list[tuple[str, list[tuple[str, str]]]], prefix: str) -> dict[str, object]:
    """A SQuAD v1.1 file in the official layout."""
    paragraphs = []
    for c, (context, qas) in enumerate(contexts):
        items = []
        for q, (question, answer) in enumerate(qas):
            start = context.index(answer)
            items.append(
                {
                    "id": f"{prefix}{c}-{q}",
                    "question": question,
                    "answers": [{"text": answer, "answer_start": start}],
                }
            )
        paragraphs.append({"context": context, "qas": items})
    return {"version": "1.1", "data": [{"title": "tiny", "paragraphs": paragraphs}]}


def build_tiny_bert(folder: Path, edit: Callable[[Any], None] | None = None) -> Path:
    """A 2-layer BERT for QA with random weights and a small WordPiece vocabulary, saved like a checkpoint
    into `folder`; `edit` may change the model's weights first."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = specials + chars + [f"##{c}" for c in string.ascii_lowercase + string.digits] + WORDS
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    model = BertForQuestionAnswering(config).eval()
    if edit is not None:
        with torch.no_grad():
            edit(model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT of `build_tiny_bert`, once per session."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_squad_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev and train SQuAD files (disjoint ids) in a data-directory layout."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "squad").mkdir()
    (folder / "squad" / "dev-v1.1.json").write_text(json.dumps(squad_json(CONTEXTS, "dev")))
    (folder / "squad" / "train-subset-v1.1.json").write_text(json.dumps(squad_json(CONTEXTS[::-1], "train")))
    return folder


def install_plugin(package: Path, target: Path) -> Path:
    """Install a plugin package into `target` (put it on PYTHONPATH), as a user would install it."""
    import subprocess
    import sys

    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, "--target", str(target), str(package)], check=True, capture_output=True)
    return target


def write_suite(path: Path, model_dir: Path, data_dir: Path, **overrides: object) -> Path:
    """A suite over the tiny model and data with very short measurement."""
    import yaml

    suite: dict[str, object] = {
        "name": "tiny",
        "data_dir": str(data_dir),
        "model": {"id": str(model_dir), "label": "tiny-bert"},
        "task": {"name": "qa", "dataset": "squad", "split": "validation", "config": {"doc_stride": 32}},
        "compressors": [{"name": "baseline"}, {"name": "int8-dynamic"}],
        "devices": ["cpu"],
        "batch_sizes": [2],
        "sequence_lengths": [64],
        "measurement": {
            "warmup": 1,
            "min_iterations": 3,
            "min_duration_s": 0,
            "quick_warmup": 1,
            "quick_min_iterations": 3,
            "quick_min_duration_s": 0,
            "threads": 1,
            "timeout_s": 300,
            "rounds": 1,
        },
    }
    suite.update(overrides)
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture
def tiny_suite(tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path) -> Path:
    """A runnable suite file over the tiny model and data."""
    return write_suite(tmp_path / "tiny.yaml", tiny_model_dir, tiny_squad_dir)


# Tiny encoder-decoders built from the shipped configs: the real layout, small sizes.
TINY_MARIAN: dict[str, Any] = {
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "vocab_size": 301,
    "decoder_vocab_size": 301,
    "max_position_embeddings": 128,
}
TINY_T5: dict[str, Any] = {
    "d_model": 32,
    "d_ff": 64,
    "d_kv": 8,
    "num_heads": 4,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "vocab_size": 300,
}
ENGLISH = [
    "the",
    "river",
    "flows",
    "past",
    "a",
    "city",
    "old",
    "bridge",
    "people",
    "walk",
    "over",
    "it",
    "every",
    "day",
]
GERMAN = ["der", "fluss", "fliesst", "an", "einer", "stadt", "alte", "bruecke", "leute", "gehen", "jeden", "tag"]


def _sentences(words: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))).capitalize() + "." for _ in range(n)]


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Parallel en-de text (test and train) and a summarization JSONL, made of a few words."""
    folder = tmp_path_factory.mktemp("text")
    for name, seed in (("test", 0), ("train", 1)):
        (folder / f"{name}.en").write_text("\n".join(_sentences(ENGLISH, 24, seed)) + "\n")
        (folder / f"{name}.de").write_text("\n".join(_sentences(GERMAN, 24, seed + 10)) + "\n")
    rows = [
        {
            "id": f"doc{i}",
            "article": " ".join(_sentences(ENGLISH, 5, 100 + i)),
            "highlights": _sentences(ENGLISH, 1, i)[0],
        }
        for i in range(16)
    ]
    (folder / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:10]))
    (folder / "news-train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[10:]))
    # made-up words: text enough for a few hundred BPE merges
    rng = random.Random(7)
    made_up = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 8))) for _ in range(3000)]
    (folder / "extra.txt").write_text("\n".join(" ".join(made_up[i : i + 10]) for i in range(0, 3000, 10)) + "\n")
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/bench-data, or skip."""
    if not (SHARED_DATA / "squad" / "dev-v1.1.json").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


class TinyRun:
    """The tiny suite's first run, its task and model, and a CompressContext built as the worker builds it."""

    def __init__(self, suite_path: Path, workdir: Path, flags: frozenset[str]) -> None:
        from bench.config import load_suite
        from bench.core.launcher import RunOptions
        from bench.launchers.sequence import plan
        from bench.validate import resolve

        resolved = resolve(load_suite(suite_path), suite_path)
        self.spec = plan(resolved, RunOptions(results_dir=workdir))[0]
        from bench.core.registry import TASKS

        self.task = TASKS.load("qa").from_mapping(self.spec.task.config)
        self.source = self.spec.model_source
        self.workdir = workdir
        self.flags = flags

    def model(self) -> Any:
        return self.task.load_model(self.source, "cpu")

    def context(self, flags: frozenset[str] | None = None) -> Any:
        from bench.worker import build_context, encoded

        model = self.model()
        data = encoded(self.task, self.spec, model.tokenizer)
        return build_context(
            self.spec, self.task, data, self.workdir, flags or self.flags, self.source, model.tokenizer
        )


@pytest.fixture
def tiny_run(tiny_suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TinyRun:
    """See TinyRun. The bench cache goes to a temporary folder."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return TinyRun(tiny_suite, tmp_path / "work", frozenset({"avx512_vnni", "avx512_bf16"}))
