"""Tiny Marian and tiny T5 (shipped configs, small sizes) through every CPU compressor, end to end in
worker processes: every record has its generation metrics, agreement, latency, memory and size."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.core.environment import cpu_flags
from bench.core.records import RunRecord, Status

from .conftest import TINY_MARIAN, TINY_T5
from .test_cli import bench
from .test_integration import records

pytestmark = pytest.mark.slow

CPU_COMPRESSORS: list[dict[str, Any]] = [
    {"name": "baseline"},
    {"name": "bf16"},
    {"name": "fp16"},
    {"name": "onnx"},
    {"name": "int8-dynamic"},
    {"name": "int8-dynamic", "label": "int8-dynamic-ort", "config": {"backend": "onnxruntime"}},
    {"name": "int8-static", "config": {"calibration_samples": 4, "calibration_new_tokens": 6}},
    {"name": "prune-magnitude"},
    {"name": "prune-structured"},
    {"name": "distill", "config": {"num_layers": 1, "train_examples": 16, "batch_size": 8, "max_steps": 4}},
    {"name": "bnb-int8"},
]
NEW_TOKENS = 6


def _suite(path: Path, text: Path, architecture: str, overrides: dict[str, Any], task: dict[str, Any]) -> Path:
    suite = {
        "name": path.stem,
        "model": {"architecture": architecture, "overrides": overrides, "tokenizer_corpus": [str(text)]},
        "task": task,
        "compressors": CPU_COMPRESSORS,
        "sequence_lengths": [48],
        "measurement": {"warmup": 1, "min_iterations": 3, "min_duration_s": 0, "threads": 1, "timeout_s": 300},
    }
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def _check(found: dict[str, RunRecord], scores: set[str]) -> None:
    fp16 = found["fp16"]
    if {"avx512_fp16", "amx_fp16"} & cpu_flags():  # this CPU computes in float16: the row runs
        assert fp16.status == Status.OK and fp16.verification is not None and fp16.verification.passed
    else:
        assert fp16.status == Status.SKIPPED and "float16" in (fp16.error.message if fp16.error else "")
    assert found["bnb-int8"].status == Status.SKIPPED and "CUDA" in (found["bnb-int8"].error.message or "")  # type: ignore[union-attr]
    measured = {name: r for name, r in found.items() if name not in ("fp16", "bnb-int8") or r.status == Status.OK}
    failed = {n: r.error.message for n, r in measured.items() if r.status != Status.OK and r.error}
    assert not failed
    base = measured["baseline"]
    for name, record in measured.items():
        assert record.weights == "random" and record.model_info["weights"] == "random"
        assert record.accuracy is not None and scores <= set(record.accuracy.metrics), name
        assert {"output_tokens", "length_ratio"} <= set(record.accuracy.metrics)
        assert record.agreement is not None and record.agreement.baseline_key == base.spec.key
        assert {"bleu_agreement", "chrf_agreement", "exact_agreement"} <= set(record.agreement.metrics)
        assert set(record.latency) == {"generate", "first_token", "per_token"}
        generate = record.latency["generate"]
        assert generate.tokens_per_s and generate.stats.n >= 3
        assert record.latency["first_token"].stats.p50 < generate.stats.p50
        assert record.memory is not None and record.memory.steady_peak
        assert record.size is not None and record.size.saved is not None and record.size.saved.bytes > 0
        assert record.verification is not None and record.verification.passed, name
    assert base.agreement is not None and base.agreement.metrics["exact_agreement"].value == 100.0
    assert "int8" in measured["int8-dynamic-ort"].verification.summary  # type: ignore[union-attr]
    assert measured["distill"].size.census_after.parameters < base.size.census_after.parameters  # type: ignore[union-attr]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built models and students go to a temporary cache, not the user's."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))


def test_tiny_marian_translation_through_every_cpu_compressor(tiny_text_dir: Path, tmp_path: Path) -> None:
    task = {
        "name": "translation",
        "dataset": str(tiny_text_dir / "test.en"),
        "split": "test",
        "limit": 6,
        "calibration_dataset": str(tiny_text_dir / "train.en"),
        "config": {
            "source_lang": "en",
            "target_lang": "de",
            "latency_new_tokens": NEW_TOKENS,
            "decoding": {"num_beams": 2, "max_new_tokens": 10},
        },
    }
    suite = _suite(tmp_path / "marian.yaml", tiny_text_dir, "opus-mt-en-de", TINY_MARIAN, task)
    result = bench("run", str(suite), "--results-dir", str(tmp_path / "results"))
    assert result.returncode == 0, result.stdout + result.stderr
    found = records(tmp_path / "results")
    _check(found, {"bleu", "chrf"})
    assert found["baseline"].accuracy.metrics["bleu"].signature.startswith("nrefs:1")  # type: ignore[union-attr]
    assert (
        "RANDOM WEIGHTS"
        in bench("report", str(tmp_path / "results"), "-o", str(tmp_path / "r")).stdout
        + (tmp_path / "r" / "README.md").read_text()
    )


def test_tiny_t5_summarization_through_every_cpu_compressor(tiny_text_dir: Path, tmp_path: Path) -> None:
    task = {
        "name": "summarization",
        "dataset": str(tiny_text_dir / "news.jsonl"),
        "split": "test",
        "limit": 6,
        "calibration_dataset": str(tiny_text_dir / "news-train.jsonl"),
        "config": {"prefix": "summarize: ", "latency_new_tokens": NEW_TOKENS, "decoding": {"max_new_tokens": 12}},
    }
    suite = _suite(tmp_path / "t5.yaml", tiny_text_dir, "t5-small", TINY_T5, task)
    result = bench("run", str(suite), "--results-dir", str(tmp_path / "results"))
    assert result.returncode == 0, result.stdout + result.stderr
    _check(records(tmp_path / "results"), {"rouge1", "rouge2", "rougeL", "rougeLsum"})


def test_a_locally_saved_checkpoint_runs_as_pretrained(tiny_text_dir: Path, tmp_path: Path) -> None:
    """The path of users with real weights: `id:` names a saved checkpoint folder (as from_pretrained
    saves a hub model), not a shipped architecture."""
    from bench.random_models import materialize

    checkpoint, _ = materialize("opus-mt-en-de", [str(tiny_text_dir)], 0, tmp_path / "build", TINY_MARIAN)
    suite = {
        "name": "checkpoint",
        "model": {"id": str(checkpoint), "label": "my-marian"},
        "task": {
            "name": "translation",
            "dataset": str(tiny_text_dir / "test.en"),
            "split": "test",
            "limit": 4,
            "config": {
                "source_lang": "en",
                "target_lang": "de",
                "latency_new_tokens": 4,
                "decoding": {"max_new_tokens": 8},
            },
        },
        "compressors": [{"name": "baseline"}, {"name": "int8-dynamic"}],
        "sequence_lengths": [32],
        "measurement": {"warmup": 1, "min_iterations": 2, "min_duration_s": 0, "threads": 1},
    }
    path = tmp_path / "checkpoint.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    result = bench("run", str(path), "--results-dir", str(tmp_path / "results"))
    assert result.returncode == 0, result.stdout + result.stderr
    found = records(tmp_path / "results")
    assert set(found) == {"baseline", "int8-dynamic"}
    for record in found.values():
        assert record.status == Status.OK and record.weights == "pretrained" and not record.model_info
        assert record.spec.model_source.location == str(checkpoint) and "bleu" in record.accuracy.metrics  # type: ignore[union-attr]
