"""Extractive question answering (SQuAD v1.1): features with a document stride, n-best span decoding,
official EM/F1, and agreement with the baseline's answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, JsonValue, PositiveInt

from bench.core.errors import DataNotFoundError
from bench.core.metrics import MetricValue, exact_match, per_example_squad, squad_scores, token_f1
from bench.core.model import Batch, ModelHandle, Outputs, Tokenizer
from bench.core.settings import Example, PluginConfig, Prediction, integers_field, text_field, texts_field
from bench.core.shape import Shape
from bench.core.sources import Source
from bench.core.task import EvalOutput, SuiteDefaults, Task
from bench.runtimes.torch import TorchModel
from bench.tasks.long_inputs import FOLLOWING, attach_following, filled, token_counter
from bench.tasks.numerics import require_finite
from bench.tasks.squad_data import load_squad

if TYPE_CHECKING:
    from torch import Tensor

_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class QAConfig(PluginConfig):
    """Feature preparation and span decoding."""

    doc_stride: PositiveInt = Field(128, description="tokens shared by consecutive windows of a long context")
    n_best: PositiveInt = Field(20, description="start and end candidates considered per window")
    max_answer_length: PositiveInt = Field(30, description="longest answer span, in tokens")
    eval_batch_size: PositiveInt = Field(
        16,
        description="windows per call in accuracy runs of models whose rows are independent (sorted by length, "
        "each call padded only to its longest window); others run at the run's batch size, fully padded",
    )
    fill_context_to_length: bool = Field(
        False,
        description="long inputs from real text: each context is followed by the next distinct contexts of the "
        "split until the window is full, and only that first window is kept (the answer's context comes first)",
    )


@dataclass
class QAFeatures:
    """Tokenized windows: model inputs plus what is needed to map spans back to text."""

    inputs: dict[str, np.ndarray]
    example_index: np.ndarray
    offsets: list[list[tuple[int, int] | None]]
    """Per window, per token: character span in the context, or None outside the context."""
    contexts: list[str]
    """Per example, the context its windows were cut from (filled contexts are longer than the example's)."""

    def __len__(self) -> int:
        return int(self.example_index.shape[0])


class QATask(Task[QAFeatures]):
    """SQuAD-style extractive QA with EM/F1."""

    name = "qa"
    description = "extractive question answering, SQuAD v1.1 EM/F1"
    Config = QAConfig
    primary_metric = "f1"
    suite_defaults = SuiteDefaults(dataset="squad", split="validation", sequence_length=384)
    config: QAConfig

    def load_model(
        self, source: Source, device: str, revision: str | None = None, **from_pretrained: object
    ) -> ModelHandle:
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(source.location, revision=revision)
            module = AutoModelForQuestionAnswering.from_pretrained(
                source.location, revision=revision, **from_pretrained
            )
        except OSError as exc:
            raise DataNotFoundError(f"cannot load model {source.describe()}: {exc}".splitlines()[0]) from None
        if not getattr(tokenizer, "is_fast", False):
            raise DataNotFoundError(
                f"model {source.describe()}: QA span decoding needs a fast tokenizer (tokenizer.json)"
            )
        module.eval()
        if "quantization_config" not in from_pretrained:  # bitsandbytes places the weights itself
            module.to(device)
        return TorchModel(module, tokenizer, device)

    def load_examples(self, source: Source, split: str, limit: int | None) -> list[Example]:
        if self.config.fill_context_to_length:  # the whole split: its next paragraphs fill each window
            return attach_following(load_squad(source.location, source.local, split, None), "context", limit)
        return load_squad(source.location, source.local, split, limit)

    def _windows(self, tokenizer: Any, example: dict[str, Any], seq_len: int) -> Any:
        """Tokenize one example into overlapping windows of `seq_len` tokens."""
        question = example["question"].lstrip()
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        room = seq_len - specials - len(tokenizer(question, add_special_tokens=False)["input_ids"])
        if room < 2:
            raise ValueError(f"sequence length {seq_len} leaves no room for the context of question {example['id']!r}")
        return tokenizer(
            question,
            example["context"],
            truncation="only_second",
            max_length=seq_len,
            stride=min(self.config.doc_stride, room - 1),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="max_length",
        )

    def encode(self, tokenizer: Tokenizer, examples: Sequence[Example], seq_len: int) -> QAFeatures:
        """Windows of `seq_len` tokens over each context, overlapping by `doc_stride` tokens (less where
        a long question leaves no room for that overlap)."""
        inputs: dict[str, list[np.ndarray]] = {}
        example_index: list[int] = []
        offsets: list[list[tuple[int, int] | None]] = []
        examples = self._filled(tokenizer, examples, seq_len)
        keep = 1 if self.config.fill_context_to_length else None
        for i, example in enumerate(examples):
            enc = self._windows(tokenizer, example, seq_len)
            for name in _INPUT_NAMES:
                if name in enc:
                    inputs.setdefault(name, []).append(np.asarray(enc[name], dtype=np.int64)[:keep])
            for w, window in enumerate(enc["offset_mapping"][:keep]):
                seq_ids = enc.sequence_ids(w)
                offsets.append([tuple(o) if seq_ids[j] == 1 else None for j, o in enumerate(window)])
                example_index.append(i)
        return QAFeatures(
            {name: np.concatenate(parts) for name, parts in inputs.items()},
            np.asarray(example_index),
            offsets,
            [text_field(e, "context") for e in examples],
        )

    def _filled(self, tokenizer: Any, examples: Sequence[dict[str, Any]], seq_len: int) -> Sequence[dict[str, Any]]:
        """The examples with their contexts filled to the window (when configured): the answer's paragraph
        first, then the split's next distinct paragraphs."""
        if not self.config.fill_context_to_length:
            return examples
        length = token_counter(tokenizer)
        return [{**e, "context": filled(e["context"], e.get(FOLLOWING, []), length, seq_len, " ")} for e in examples]

    def train_batches(
        self, teacher: ModelHandle, examples: Sequence[Example], seq_len: int, batch_size: int
    ) -> list[Batch]:
        """Windows with `start_positions`/`end_positions` of the first gold answer (0, the [CLS] token,
        where the answer is not inside the window)."""
        import torch

        tokenizer = teacher.tokenizer
        columns: dict[str, list[list[int]]] = {}
        for example in examples:
            answers = texts_field(example, "answers")
            if not answers:
                continue
            a_start = integers_field(example, "answer_starts")[0]
            a_end = a_start + len(answers[0])
            enc = self._windows(tokenizer, example, seq_len)
            for w, window in enumerate(enc["offset_mapping"]):
                seq_ids = enc.sequence_ids(w)
                context = [j for j, sid in enumerate(seq_ids) if sid == 1]
                start = end = 0
                if context and window[context[0]][0] <= a_start and window[context[-1]][1] >= a_end:
                    start = next(j for j in context if window[j][1] > a_start)
                    end = next(j for j in reversed(context) if window[j][0] < a_end)
                for name in _INPUT_NAMES:
                    if name in enc:
                        columns.setdefault(name, []).append(enc[name][w])
                columns.setdefault("start_positions", []).append([start])
                columns.setdefault("end_positions", []).append([end])
        tensors = {k: torch.tensor(v, dtype=torch.long) for k, v in columns.items()}
        tensors["start_positions"] = tensors["start_positions"].squeeze(1)
        tensors["end_positions"] = tensors["end_positions"].squeeze(1)
        n = len(tensors["input_ids"])
        return [{k: v[i : i + batch_size] for k, v in tensors.items()} for i in range(0, n, batch_size)]

    def distillation_loss(
        self, student: Outputs, teacher: Outputs, batch: Batch, temperature: float, alpha: float
    ) -> Tensor:
        import torch.nn.functional as F

        soft: Any = 0.0
        hard: Any = 0.0
        for head, label in (("start_logits", "start_positions"), ("end_logits", "end_positions")):
            s_logits, t_logits = student[head].float(), teacher[head].float()
            soft = soft + F.kl_div(
                F.log_softmax(s_logits / temperature, dim=-1),
                F.softmax(t_logits / temperature, dim=-1),
                reduction="batchmean",
            ) * (temperature**2)
            hard = hard + F.cross_entropy(s_logits, batch[label].to(s_logits.device))
        return alpha * soft / 2 + (1 - alpha) * hard / 2

    def batches(self, features: QAFeatures, batch_size: int, full_only: bool = False) -> list[Batch]:
        import torch

        n = len(features)
        stop = n - n % batch_size if full_only else n
        return [
            {k: torch.from_numpy(v[i : i + batch_size]) for k, v in features.inputs.items()}
            for i in range(0, stop, batch_size)
        ]

    def _best_span(
        self,
        context: str,
        windows: list[int],
        features: QAFeatures,
        start: np.ndarray,
        end: np.ndarray,
    ) -> tuple[str, float]:
        best_text, best_score = "", -np.inf
        k = self.config.n_best
        for w in windows:
            offsets = features.offsets[w]
            starts = np.argsort(start[w])[::-1][:k]
            ends = np.argsort(end[w])[::-1][:k]
            for s in starts:
                if offsets[s] is None:
                    continue
                for e in ends:
                    if offsets[e] is None or e < s or e - s + 1 > self.config.max_answer_length:
                        continue
                    score = float(start[w][s] + end[w][e])
                    if score > best_score:
                        s_char = offsets[s][0]
                        e_char = offsets[e][1]
                        best_text, best_score = context[s_char:e_char], score
        return best_text, best_score

    def fills_inputs(self) -> bool:
        return self.config.fill_context_to_length

    def evaluation_batch_size(self, shape: Shape, model: ModelHandle) -> int:
        return self.config.eval_batch_size if model.rows_independent() else shape.batch_size

    def _logits(self, model: ModelHandle, features: QAFeatures, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Start and end logits of every window, at full length. Where the model's rows are independent,
        windows run sorted by length and each call is cut to its longest window (rounded up to a multiple
        of 8), so padding is not computed; the cut positions are padding, whose logits stay -inf (offsets
        outside the context are never chosen)."""
        import torch

        n, full = features.inputs["input_ids"].shape
        start = np.full((n, full), -np.inf, dtype=np.float32)
        end = np.full((n, full), -np.inf, dtype=np.float32)
        if not model.rows_independent():
            order, lengths = np.arange(n), np.full(n, full)
        else:
            mask = features.inputs.get("attention_mask")
            lengths = mask.sum(axis=1) if mask is not None else np.full(n, full)
            order = np.argsort(lengths, kind="stable")
        for i in range(0, n, batch_size):
            rows = order[i : i + batch_size]
            width = min(full, -(-int(lengths[rows].max()) // 8) * 8)
            batch = {k: torch.from_numpy(np.ascontiguousarray(v[rows, :width])) for k, v in features.inputs.items()}
            out = model.forward(batch)
            for head in ("start_logits", "end_logits"):
                require_finite(out[head], f"{head} of the evaluated windows")
            start[rows, :width] = out["start_logits"].float().cpu().numpy()
            end[rows, :width] = out["end_logits"].float().cpu().numpy()
        return start, end

    def evaluate(
        self, model: ModelHandle, examples: Sequence[Example], features: QAFeatures, batch_size: int
    ) -> EvalOutput:
        start, end = self._logits(model, features, batch_size)
        windows: dict[int, list[int]] = {}
        for w, ex in enumerate(features.example_index.tolist()):
            windows.setdefault(ex, []).append(w)
        rows: list[Prediction] = []
        for i, example in enumerate(examples):
            text, score = self._best_span(features.contexts[i], windows.get(i, []), features, start, end)
            answers = texts_field(example, "answers")
            rows.append(
                {
                    "id": example["id"],
                    "prediction": text,
                    "answers": list[JsonValue](answers),
                    "score": score if np.isfinite(score) else None,
                    **per_example_squad(text, answers),
                }
            )
        return EvalOutput(metrics=self.score_predictions(rows), predictions=rows)

    def score_predictions(self, rows: Sequence[Prediction]) -> dict[str, MetricValue]:
        """SQuAD EM and F1 of the rows' answers."""
        return squad_scores((text_field(r, "prediction"), texts_field(r, "answers")) for r in rows)

    def agreement(self, predictions: Sequence[Prediction], baseline: Sequence[Prediction]) -> dict[str, MetricValue]:
        return qa_agreement(predictions, baseline)


def qa_agreement(predictions: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]) -> dict[str, MetricValue]:
    """Percent of shared examples whose answer equals the baseline's (normalised), and the mean F1
    between the two answers. Only ids present in both are compared."""
    base = {r["id"]: r["prediction"] for r in baseline}
    pairs = [(r["prediction"], base[r["id"]]) for r in predictions if r["id"] in base]
    if not pairs:
        raise ValueError("no example ids in common with the baseline")
    n = len(pairs)
    return {
        "exact_agreement": MetricValue(value=100.0 * sum(exact_match(p, b) for p, b in pairs) / n),
        "f1_agreement": MetricValue(value=100.0 * sum(token_f1(p, b) for p, b in pairs) / n),
    }
