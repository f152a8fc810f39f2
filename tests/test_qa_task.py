"""The QA task's features and span decoding, checked with a model that points at known spans."""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.core.model import Batch, ModelHandle
from bench.core.sources import Source
from bench.tasks.qa import QAFeatures, QATask


class OracleModel(ModelHandle):
    """Puts the highest logits on the gold answer's tokens (per window), or on a fixed wrong token."""

    runtime = "fake"

    def __init__(self, tokenizer: Any, features: QAFeatures, examples: list[dict[str, Any]], wrong: bool = False):
        super().__init__(tokenizer, "cpu")
        self.start = torch.full((len(features), features.inputs["input_ids"].shape[1]), -10.0)
        self.end = self.start.clone()
        self.cursor = 0
        for w, ex in enumerate(features.example_index.tolist()):
            example = examples[ex]
            a_start = example["answer_starts"][0]
            a_end = a_start + len(example["answers"][0])
            for t, off in enumerate(features.offsets[w]):
                if off is None:
                    continue
                if wrong:
                    self.start[w, t] = self.end[w, t] = 5.0
                    break
                if off[0] == a_start:
                    self.start[w, t] = 5.0
                if off[1] == a_end:
                    self.end[w, t] = 5.0

    def forward(self, batch: Batch) -> Mapping[str, torch.Tensor]:
        n = batch["input_ids"].shape[0]
        out = {
            "start_logits": self.start[self.cursor : self.cursor + n],
            "end_logits": self.end[self.cursor : self.cursor + n],
        }
        self.cursor += n
        return out

    def rows_independent(self) -> bool:
        return False  # it answers by the order of the calls: keep them in window order

    def save(self, directory: Path) -> list[Path]:
        return []

    def tensors(self) -> Iterator[tuple[str, Any]]:
        return iter(())


@pytest.fixture
def task_and_data(tiny_model_dir: Path, tiny_squad_dir: Path) -> tuple[QATask, Any, list[dict[str, Any]]]:
    from transformers import AutoTokenizer

    task = QATask.from_mapping({"doc_stride": 8})
    assert isinstance(task, QATask)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = task.load_examples(Source(str(tiny_squad_dir / "squad" / "dev-v1.1.json"), True), "validation", None)
    return task, tokenizer, examples


def test_examples_in_file_order_with_limit(task_and_data: Any) -> None:
    _, _, examples = task_and_data
    assert [e["id"] for e in examples] == ["dev0-0", "dev0-1", "dev0-2", "dev1-0", "dev1-1", "dev1-2"]
    assert examples[1]["answers"] == ["1889"]


def test_long_contexts_are_split_into_overlapping_windows(task_and_data: Any) -> None:
    task, tokenizer, examples = task_and_data
    features = task.encode(tokenizer, examples, seq_len=32)
    assert len(features) > len(examples)  # some contexts need several windows
    assert features.inputs["input_ids"].shape[1] == 32  # padded to the run's sequence length
    assert sorted(set(features.example_index.tolist())) == list(range(len(examples)))
    assert all(features.offsets[w][0] is None for w in range(len(features)))  # [CLS] is not context


@pytest.mark.parametrize("seq_len", [32, 64])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_oracle_logits_decode_to_the_gold_answers(task_and_data: Any, seq_len: int, batch_size: int) -> None:
    task, tokenizer, examples = task_and_data
    features = task.encode(tokenizer, examples, seq_len)
    result = task.evaluate(OracleModel(tokenizer, features, examples), examples, features, batch_size)
    assert [r["prediction"] for r in result.predictions] == [e["answers"][0] for e in examples]
    assert result.metrics["exact_match"].value == 100.0
    assert result.metrics["f1"].value == 100.0


def test_wrong_logits_score_low(task_and_data: Any) -> None:
    task, tokenizer, examples = task_and_data
    features = task.encode(tokenizer, examples, 64)
    result = task.evaluate(OracleModel(tokenizer, features, examples, wrong=True), examples, features, 2)
    assert result.metrics["f1"].value < 50.0
    assert {"id", "prediction", "answers", "exact_match", "f1"} <= set(result.predictions[0])


def test_long_questions_shrink_the_overlap_instead_of_failing(task_and_data: Any) -> None:
    task, tokenizer, examples = task_and_data
    long_question = dict(examples[0], question="what is the capital city of france " * 3)
    features = task.encode(tokenizer, [long_question], seq_len=32)
    assert len(features) >= 1
    with pytest.raises(ValueError, match="leaves no room"):
        task.encode(tokenizer, [dict(examples[0], question="paris " * 40)], seq_len=32)


def test_hub_layout_dataset_saved_to_disk(tmp_path: Path, task_and_data: Any) -> None:
    """The hub path (datasets' flat SQuAD layout) read from a dataset saved locally."""
    import datasets

    task, _, examples = task_and_data
    flat = {
        "id": [e["id"] for e in examples],
        "title": [e["title"] for e in examples],
        "context": [e["context"] for e in examples],
        "question": [e["question"] for e in examples],
        "answers": [{"text": e["answers"], "answer_start": e["answer_starts"]} for e in examples],
    }
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict(flat)}).save_to_disk(str(tmp_path / "ds"))
    from bench.datadir import resolve_dataset

    source = resolve_dataset(str(tmp_path / "ds"), "validation", None, tmp_path)
    loaded = task.load_examples(source, "validation", 4)
    assert loaded == examples[:4]
