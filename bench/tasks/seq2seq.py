"""Sequence-to-sequence generation tasks: translation (BLEU, chrF) and summarization (ROUGE).

Accuracy is measured with the suite's decoding settings (beams, max new tokens, length penalty);
latency with a fixed number of new tokens, so that every compressor does the same work. Inputs are
truncated to the run's sequence length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, NonNegativeInt, PositiveInt

from bench.core.errors import DataNotFoundError
from bench.core.generation_timing import time_generation
from bench.core.latency import LatencyResult, LatencySettings
from bench.core.metrics import MetricValue
from bench.core.model import Batch, ModelHandle, Outputs, Tokenizer
from bench.core.settings import Example, PluginConfig, Prediction, integer_field, text_field, texts_field
from bench.core.shape import Shape
from bench.core.sources import Source
from bench.core.task import EvalOutput, SuiteDefaults, Task
from bench.runtimes.torch import TorchModel
from bench.tasks.generation_metrics import bleu_chrf, length_metrics, rouge, rouge_per_example, sentence_chrf
from bench.tasks.long_inputs import FOLLOWING, attach_following, filled, token_counter
from bench.tasks.numerics import finite_scores_check
from bench.tasks.seq2seq_data import load_parallel, load_summaries

if TYPE_CHECKING:
    from torch import Tensor


class Decoding(PluginConfig):
    """How accuracy runs decode (transformers generation arguments)."""

    num_beams: PositiveInt = 1
    max_new_tokens: PositiveInt = 128
    min_new_tokens: NonNegativeInt = 0
    length_penalty: float = 1.0
    """Exponent of the length normalisation of beam scores (>1 favours longer outputs)."""
    no_repeat_ngram_size: NonNegativeInt = 0
    early_stopping: bool = True
    """Beam search stops when num_beams finished candidates exist."""

    def generation_kwargs(self) -> dict[str, Any]:
        """Arguments for `generate` (greedy search when num_beams is 1)."""
        kwargs: dict[str, Any] = {
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens,
            "do_sample": False,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
        }
        if self.num_beams > 1:
            kwargs.update(length_penalty=self.length_penalty, early_stopping=self.early_stopping)
        return kwargs


class Seq2SeqConfig(PluginConfig):
    """Settings shared by the generation tasks."""

    prefix: str = ""
    """Text put before every input, e.g. 'translate English to German: ' or 'summarize: ' for T5."""
    decoding: Decoding = Field(default_factory=Decoding)
    latency_new_tokens: int = Field(32, ge=2)
    """Latency runs generate exactly this many new tokens per input (greedy, EOS ignored)."""
    eval_batch_size: PositiveInt = 8
    """Inputs decoded together in accuracy runs (latency uses the run's batch size)."""
    fill_to_length: bool = False
    """Long inputs from real text: each source is followed by the next sources of the split (in order,
    wrapping) until it holds the run's sequence length in tokens; its reference stays its own."""


class TranslationConfig(Seq2SeqConfig):
    """Translation: the language pair and direction."""

    source_lang: str = Field(min_length=2)
    target_lang: str = Field(min_length=2)


class SummarizationConfig(Seq2SeqConfig):
    """Summarization: which fields hold the document and the summary (auto-detected when unset)."""

    source_field: str | None = None
    target_field: str | None = None


@dataclass
class Seq2SeqFeatures:
    """Tokenized inputs (truncated, unpadded) and references, in example order."""

    input_ids: list[list[int]]
    references: list[str]
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)


def _pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def new_token_count(sequences: Any, eos_id: int | None) -> list[int]:
    """Tokens generated per row: after the decoder start token, up to and including the first EOS
    (what follows it is padding; a pad id before it is a token the model chose)."""
    counts = []
    for row in sequences.tolist():
        tokens = row[1:]
        counts.append(tokens.index(eos_id) + 1 if eos_id in tokens else len(tokens))
    return counts


class Seq2SeqTask(Task[Seq2SeqFeatures]):
    """Generation with an encoder-decoder model (AutoModelForSeq2SeqLM)."""

    config: Seq2SeqConfig
    reference_metrics: ClassVar[str]

    def reader(self) -> Callable[[str, bool, str, int | None], list[dict[str, Any]]]:
        """The data loader of this task, given its configured fields: (location, local, split, limit)."""
        raise NotImplementedError

    def load_examples(self, source: Source, split: str, limit: int | None) -> list[Example]:
        if self.config.fill_to_length:  # the whole split: its next sources fill each input
            return attach_following(self.reader()(source.location, source.local, split, None), "source", limit)
        return self.reader()(source.location, source.local, split, limit)

    def load_model(
        self, source: Source, device: str, revision: str | None = None, **from_pretrained: object
    ) -> ModelHandle:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(source.location, revision=revision)
            module = AutoModelForSeq2SeqLM.from_pretrained(source.location, revision=revision, **from_pretrained)
        except (OSError, ValueError) as exc:
            raise DataNotFoundError(f"cannot load model {source.describe()}: {exc}".splitlines()[0]) from None
        if not getattr(module.config, "is_encoder_decoder", False):
            raise DataNotFoundError(f"model {source.describe()} is not an encoder-decoder model")
        module.eval()
        if "quantization_config" not in from_pretrained:  # bitsandbytes places the weights itself
            module.to(device)
        return TorchModel(module, tokenizer, device)

    def encode(self, tokenizer: Tokenizer, examples: Sequence[Example], seq_len: int) -> Seq2SeqFeatures:
        sources = [text_field(e, "source") for e in examples]
        if self.config.fill_to_length:
            length = token_counter(tokenizer)
            sources = [
                filled(s, texts_field(e, FOLLOWING), length, seq_len, "\n")
                for s, e in zip(sources, examples, strict=True)
            ]
        texts = [self.config.prefix + source for source in sources]
        ids = tokenizer(texts, truncation=True, max_length=seq_len)["input_ids"]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return Seq2SeqFeatures([list(r) for r in ids], [text_field(e, "reference") for e in examples], int(pad))

    def batches(self, features: Seq2SeqFeatures, batch_size: int, full_only: bool = False) -> list[Batch]:
        n = len(features)
        stop = n - n % batch_size if full_only else n
        out: list[Batch] = []
        for i in range(0, stop, batch_size):
            ids, mask = _pad(features.input_ids[i : i + batch_size], features.pad_id)
            out.append({"input_ids": ids, "attention_mask": mask})
        return out

    def latency(
        self,
        model: ModelHandle,
        pool: Sequence[Batch],
        settings: LatencySettings,
        shape: Shape,
    ) -> dict[str, LatencyResult]:
        """Whole-call, first-token and per-token latency of greedy generation of exactly
        `latency_new_tokens` tokens."""
        n = self.config.latency_new_tokens
        fixed = {"num_beams": 1, "do_sample": False, "max_new_tokens": n, "min_new_tokens": n}

        def generate(batch: Batch, on_token: Any) -> int:
            sequences = model.generate(batch, fixed, on_token)
            return int(sequences.shape[1]) - 1

        timing = time_generation(
            generate, pool, settings, n, shape, model.synchronize, device_timer=model.device_timer()
        )
        return timing.as_dict()

    def fills_inputs(self) -> bool:
        return self.config.fill_to_length

    def evaluation_batch_size(self, shape: Shape, model: ModelHandle) -> int:
        """Accuracy runs decode `eval_batch_size` inputs per call, whatever the latency shape."""
        return self.config.eval_batch_size

    def evaluate(
        self, model: ModelHandle, examples: Sequence[Example], features: Seq2SeqFeatures, batch_size: int
    ) -> EvalOutput:
        """Decode every input with the suite's decoding settings (longest inputs first, to pad little)."""
        tokenizer = model.tokenizer
        kwargs = {**self.config.decoding.generation_kwargs(), "logits_processor": finite_scores_check()}
        order = sorted(range(len(features)), key=lambda i: -len(features.input_ids[i]))
        outputs: dict[int, tuple[str, int]] = {}
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = _pad([features.input_ids[i] for i in chunk], features.pad_id)
            sequences = model.generate({"input_ids": ids, "attention_mask": mask}, kwargs)
            texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
            counts = new_token_count(sequences, tokenizer.eos_token_id)
            for i, text, count in zip(chunk, texts, counts, strict=True):
                outputs[i] = (text.strip(), count)
        rows: list[Prediction] = [
            {
                "id": example["id"],
                "prediction": outputs[i][0],
                "reference": features.references[i],
                "output_tokens": outputs[i][1],
                **self.per_example(outputs[i][0], features.references[i]),
            }
            for i, example in enumerate(examples)
        ]
        return EvalOutput(metrics=self.score_predictions(rows), predictions=rows)

    def score_predictions(self, rows: Sequence[Prediction]) -> dict[str, MetricValue]:
        """Corpus accuracy, output lengths against the references, and mean generated tokens."""
        predictions = [text_field(r, "prediction") for r in rows]
        references = [text_field(r, "reference") for r in rows]
        metrics = self.score(predictions, references)
        metrics.update(length_metrics(predictions, references))
        tokens = [integer_field(r, "output_tokens") for r in rows]
        metrics["output_tokens"] = MetricValue(value=sum(tokens) / max(1, len(tokens)), higher_is_better=None)
        return metrics

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> dict[str, MetricValue]:
        """Corpus-level accuracy against the references."""
        raise NotImplementedError

    def agreement_scores(self, outputs: Sequence[str], baseline: Sequence[str]) -> dict[str, MetricValue]:
        """Scores of `outputs` with the baseline's outputs as references: BLEU and chrF."""
        return bleu_chrf(outputs, baseline)

    def per_example(self, prediction: str, reference: str) -> dict[str, float]:
        """Scores of one example, stored beside its prediction (for bootstrap intervals)."""
        raise NotImplementedError

    def agreement(self, predictions: Sequence[Prediction], baseline: Sequence[Prediction]) -> dict[str, MetricValue]:
        """BLEU and chrF of these outputs against the baseline's outputs as references, the same
        task metrics against them, and the percentage of identical outputs."""
        base = {str(r["id"]): text_field(r, "prediction") for r in baseline}
        pairs = [(text_field(r, "prediction"), base[str(r["id"])]) for r in predictions if str(r["id"]) in base]
        if not pairs:
            raise ValueError("no example ids in common with the baseline")
        hyps, refs = [p for p, _ in pairs], [b for _, b in pairs]
        metrics = {f"{k}_agreement": v for k, v in self.agreement_scores(hyps, refs).items()}
        metrics["exact_agreement"] = MetricValue(value=100.0 * sum(p == b for p, b in pairs) / len(pairs))
        return metrics

    def train_batches(
        self, teacher: ModelHandle, examples: Sequence[Example], seq_len: int, batch_size: int
    ) -> list[Batch]:
        """Sequence-level distillation data: the inputs with the teacher's own greedy outputs as labels
        (Kim and Rush, 2016), so no reference is needed."""
        import torch

        features = self.encode(teacher.tokenizer, examples, seq_len)
        kwargs = {"num_beams": 1, "do_sample": False, "max_new_tokens": self.config.decoding.max_new_tokens}
        out: list[Batch] = []
        for batch in self.batches(features, batch_size):
            sequences = teacher.generate(batch, kwargs)  # decoder start token, then the output
            labels = sequences[:, 1:].clone()
            # only what follows a sequence's first EOS is padding (a random model may emit the pad id itself)
            lengths = new_token_count(sequences, teacher.tokenizer.eos_token_id)
            positions = torch.arange(labels.shape[1]).unsqueeze(0)
            labels[positions >= torch.tensor(lengths).unsqueeze(1)] = -100
            decoder_inputs = sequences[:, :-1].clone()
            out.append({**batch, "decoder_input_ids": decoder_inputs, "labels": labels.to(torch.long)})
        return out

    def distillation_loss(
        self, student: Outputs, teacher: Outputs, batch: Batch, temperature: float, alpha: float
    ) -> Tensor:
        """alpha * per-token KL to the teacher's distribution at `temperature` + (1 - alpha) * cross-entropy
        on the teacher's output tokens, over the labelled positions."""
        import torch.nn.functional as F

        labels = batch["labels"].to(student["logits"].device)
        mask = labels != -100
        if not bool(mask.any()):
            raise ValueError("a distillation batch has no labelled position")
        s_logits, t_logits = student["logits"].float()[mask], teacher["logits"].float()[mask]
        soft = F.kl_div(
            F.log_softmax(s_logits / temperature, dim=-1),
            F.softmax(t_logits / temperature, dim=-1),
            reduction="batchmean",
        ) * (temperature**2)
        hard = F.cross_entropy(s_logits, labels[mask])
        return alpha * soft + (1 - alpha) * hard


class TranslationTask(Seq2SeqTask):
    """Translation scored with sacrebleu's BLEU and chrF."""

    name = "translation"
    description = "translation, sacrebleu BLEU and chrF (signatures stored)"
    Config = TranslationConfig
    primary_metric = "bleu"
    suite_defaults = SuiteDefaults(
        dataset="wmt21-en-de", split="test", sequence_length=128, config={"source_lang": "en", "target_lang": "de"}
    )
    config: TranslationConfig

    def reader(self) -> Callable[[str, bool, str, int | None], list[dict[str, Any]]]:
        return partial(load_parallel, source_lang=self.config.source_lang, target_lang=self.config.target_lang)

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> dict[str, MetricValue]:
        return bleu_chrf(predictions, references)

    def per_example(self, prediction: str, reference: str) -> dict[str, float]:
        return {"chrf": sentence_chrf(prediction, reference)}


class SummarizationTask(Seq2SeqTask):
    """Summarization scored with rouge-score's ROUGE-1/2/L/Lsum (stemming)."""

    name = "summarization"
    description = "summarization, ROUGE-1/2/L/Lsum (rouge-score, stemming) and output length"
    Config = SummarizationConfig
    primary_metric = "rougeL"
    suite_defaults = SuiteDefaults(dataset="cnn_dailymail", split="test", sequence_length=512)
    config: SummarizationConfig

    def reader(self) -> Callable[[str, bool, str, int | None], list[dict[str, Any]]]:
        return partial(load_summaries, source_field=self.config.source_field, target_field=self.config.target_field)

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> dict[str, MetricValue]:
        return rouge(predictions, references)

    def agreement_scores(self, outputs: Sequence[str], baseline: Sequence[str]) -> dict[str, MetricValue]:
        """BLEU and chrF, and ROUGE, against the baseline's outputs."""
        return {**bleu_chrf(outputs, baseline), **rouge(outputs, baseline)}

    def per_example(self, prediction: str, reference: str) -> dict[str, float]:
        return rouge_per_example(prediction, reference)
