"""QA evaluation batches windows sorted by length and cut to their longest one where a model's rows are
independent, and keeps the run's batch at full padding where they are not; the answers stay the same."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bench.core.model import Batch, ModelHandle
from bench.core.shape import Shape
from bench.core.sources import Source
from bench.runtimes.torch import TorchModel
from bench.tasks.qa import QATask

SHAPE_128 = Shape(batch_size=1, sequence_length=128)
SHAPE_384 = Shape(batch_size=1, sequence_length=384)


class FullPadding(ModelHandle):
    """A model that says its rows depend on each other: evaluated as before, in order and fully padded."""

    runtime = "pytorch"

    def __init__(self, inner: ModelHandle) -> None:
        super().__init__(inner.tokenizer, inner.device, inner.config)
        self.inner = inner
        self.widths: list[int] = []

    def forward(self, batch: Batch) -> Mapping[str, Any]:
        self.widths.append(int(batch["input_ids"].shape[1]))
        return self.inner.forward(batch)

    def rows_independent(self) -> bool:
        return False

    def save(self, directory: Path) -> list[Path]:
        return self.inner.save(directory)

    def tensors(self) -> Any:
        return self.inner.tensors()


class Recording(FullPadding):
    def rows_independent(self) -> bool:
        return True


def _task() -> QATask:
    task = QATask.from_mapping({"doc_stride": 32})
    assert isinstance(task, QATask)
    return task


def test_independent_rows_are_cut_to_their_longest_window(tiny_model_dir: Path, tiny_squad_dir: Path) -> None:
    task = _task()
    model = task.load_model(Source(str(tiny_model_dir), local=True), "cpu")
    examples = task.load_examples(Source(str(tiny_squad_dir / "squad" / "dev-v1.1.json"), local=True), "validation", 6)
    features = task.encode(model.tokenizer, examples, 128)
    padded, cut = FullPadding(model), Recording(model)
    before = task.evaluate(padded, examples, features, 1)
    after = task.evaluate(cut, examples, features, task.evaluation_batch_size(SHAPE_128, cut))
    assert set(padded.widths) == {128}
    assert max(cut.widths) < 128 and all(w % 8 == 0 for w in cut.widths)
    assert len(cut.widths) == 1  # 6 windows in one call of 16
    assert [r["prediction"] for r in before.predictions] == [r["prediction"] for r in after.predictions]


def test_dynamic_int8_keeps_full_padding(tiny_model_dir: Path) -> None:
    import torch

    task = _task()
    model = task.load_model(Source(str(tiny_model_dir), local=True), "cpu")
    assert isinstance(model, TorchModel) and model.rows_independent()
    quantized = torch.ao.quantization.quantize_dynamic(model.module, {torch.nn.Linear}, dtype=torch.qint8)
    handle = TorchModel(quantized, model.tokenizer, "cpu")
    assert not handle.rows_independent()
    assert task.evaluation_batch_size(Shape(batch_size=1, sequence_length=64), handle) == 1


@pytest.mark.slow
def test_same_answers_on_real_squad(shared_data: Path) -> None:
    """MiniLM-SQuAD on 300 real questions: at least 99.5% identical answers and F1 within 0.05 points."""
    model_dir = shared_data / "models" / "minilm-l6-squad"
    if not model_dir.is_dir():
        pytest.skip("the MiniLM SQuAD model is not in the data directory")
    task = QATask.from_mapping({})
    assert isinstance(task, QATask)
    model = task.load_model(Source(str(model_dir), local=True), "cpu")
    examples = task.load_examples(Source(str(shared_data / "squad" / "dev-v1.1.json"), local=True), "validation", 300)
    features = task.encode(model.tokenizer, examples, 384)
    before = task.evaluate(FullPadding(model), examples, features, 1)
    after = task.evaluate(model, examples, features, task.evaluation_batch_size(SHAPE_384, model))
    same = sum(a["prediction"] == b["prediction"] for a, b in zip(before.predictions, after.predictions, strict=True))
    assert same / len(examples) >= 0.995
    assert abs(before.metrics["f1"].value - after.metrics["f1"].value) <= 0.05
