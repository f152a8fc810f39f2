"""The plugin contract: what a compressor or a task receives and returns.

This module is imported by every plugin and by `bench validate`, so it never imports torch at
module level. Third-party plugins import from here only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bench.config import format_validation_error
from bench.datadir import Source
from bench.errors import ConfigError
from bench.metrics import MetricValue

if TYPE_CHECKING:
    import torch

    from bench.measure.latency import LatencyResult, LatencySettings

FORWARD_SCOPE = "model forward on tokenized inputs (tokenization and decoding excluded), device synchronized"

Batch = Mapping[str, Any]
"""One model input: tensor name -> tensor (torch on the way in; a runtime may convert)."""


class NoOptions(BaseModel):
    """A plugin without settings: any key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def validate_options(owner: str, options_class: type[BaseModel], mapping: Mapping[str, Any]) -> BaseModel:
    """Validate a plugin's `config:`/`options:` mapping; ConfigError names the field."""
    try:
        return options_class.model_validate(dict(mapping))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix=f"{owner}.", owner=options_class)) from None


class ModelHandle(ABC):
    """A model ready to run: a runtime (eager PyTorch, ONNX Runtime, ...) plus its tokenizer.

    Tasks call `forward`; measurement calls `synchronize`, `save` and `tensors`.
    """

    runtime: ClassVar[str]

    def __init__(self, tokenizer: Any, device: str, config: Any = None) -> None:
        self.tokenizer = tokenizer
        self.device = device
        self.config = config

    @abstractmethod
    def forward(self, batch: Batch) -> Mapping[str, torch.Tensor]:
        """Run one batch; return the named outputs (for QA: start_logits, end_logits) as CPU-visible tensors."""

    @abstractmethod
    def save(self, directory: Path) -> list[Path]:
        """Serialize the model's weights and graph as a user would ship them; return the files written."""

    @abstractmethod
    def tensors(self) -> Iterator[tuple[str, Any]]:
        """Every weight tensor (torch or numpy), for parameter, sparsity and dtype census."""

    def synchronize(self) -> None:
        """Wait for queued device work (CUDA) so that timings cover it. No-op on CPU."""

    def generate(
        self, batch: Batch, settings: Mapping[str, Any], on_token: Callable[[], None] | None = None
    ) -> torch.Tensor:
        """Generated token ids, one row per input (sequence-to-sequence models): `settings` are
        transformers generation arguments; `on_token` is called after each decoding step."""
        raise NotImplementedError(f"{self.runtime} models of this kind do not generate text")


class TorchModel(ModelHandle):
    """An eager PyTorch module. `save_format` is "safetensors" or "torch" (for packed quantized weights)."""

    runtime = "pytorch"

    def __init__(self, module: torch.nn.Module, tokenizer: Any, device: str, save_format: str = "safetensors") -> None:
        super().__init__(tokenizer, device, getattr(module, "config", None))
        self.module = module
        self.save_format = save_format

    def forward(self, batch: Batch) -> Mapping[str, torch.Tensor]:
        import torch

        inputs = {k: v.to(self.device) for k, v in batch.items()}
        with torch.inference_mode():
            out = self.module(**inputs)
        return dict(out.items()) if hasattr(out, "items") else {"output": out}

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def generate(
        self, batch: Batch, settings: Mapping[str, Any], on_token: Callable[[], None] | None = None
    ) -> torch.Tensor:
        from bench.runtimes.hf_generate import hf_generate

        with _inference_mode():
            return hf_generate(self.module, batch, settings, on_token, self.device)

    def save(self, directory: Path) -> list[Path]:
        import torch

        directory.mkdir(parents=True, exist_ok=True)
        if self.save_format == "safetensors":
            self.module.save_pretrained(directory, safe_serialization=True)  # type: ignore[operator]
        else:
            torch.save(self.module.state_dict(), directory / "model.pt")
            if self.config is not None:
                self.config.save_pretrained(directory)
        return sorted(p for p in directory.rglob("*") if p.is_file())

    def tensors(self) -> Iterator[tuple[str, Any]]:
        from bench.measure.census import state_dict_tensors

        yield from state_dict_tensors(self.module)


def _inference_mode() -> Any:
    import torch

    return torch.inference_mode()


def eager(model: ModelHandle, who: str) -> TorchModel:
    """`model` as an eager PyTorch model, or a TypeError naming the compressor that needs one
    (for example a chain that puts a PyTorch-only step after an ONNX one)."""
    if not isinstance(model, TorchModel):
        raise TypeError(f"{who} needs an eager PyTorch model, got a {model.runtime} one")
    return model


class Verification(BaseModel):
    """What a compressor proved about its output. `passed=False` makes the run a failed run."""

    passed: bool
    summary: str
    checks: dict[str, Any] = {}


@dataclass
class CalibrationData:
    """Model inputs drawn from the task's training split, and the ids of the examples they came from."""

    batches: list[Batch]
    example_ids: list[str]


@dataclass
class CompressContext:
    """What a compressor receives beside the model."""

    device: str
    seed: int
    workdir: Path
    """Scratch folder of this run, removed afterwards."""
    threads: int
    cpu_flags: frozenset[str]
    task: Task
    batch_size: int
    sequence_length: int
    model_source: str
    """Where the uncompressed model was loaded from (local folder or hub id)."""
    reload: Callable[..., ModelHandle]
    """Load the uncompressed model again, passing keyword arguments to from_pretrained (e.g. a
    quantization_config). For compressors that act at load time, such as bitsandbytes."""
    example_batch: Callable[[], Batch]
    """One input at the run's shape, for tracing and export (not for calibration)."""
    calibration_data: Callable[[int], CalibrationData]
    """`n` examples from the task's training split (never its evaluation split), as batches."""
    training_examples: Callable[[int | None], list[dict[str, Any]]]
    """The first `n` (or all) examples of the task's training split, for compressors that train."""
    cache_dir: Path
    """A persistent folder for artefacts worth keeping between runs (trained students)."""
    notes: list[str] = field(default_factory=list)
    """Hardware notes that the compressor adds (shown as flags in reports)."""
    facts: dict[str, Any] = field(default_factory=dict)
    """What the compressor did, stored in the record's `compression` (calibration ids, training time...)."""


class Compressor(ABC):
    """A way to shrink a model. Subclasses set `name`, `description`, `Config` and `devices`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]] = NoOptions
    devices: ClassVar[frozenset[str]] = frozenset({"cpu", "cuda"})
    needs_calibration: ClassVar[bool] = False

    def __init__(self, config: BaseModel) -> None:
        self.config = config

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], where: str = "config") -> Compressor:
        """Build from the suite's `config:` mapping, validated by `Config`."""
        return cls(validate_options(where, cls.Config, mapping))

    def unsupported_reason(self, device: str, cpu_flags: frozenset[str]) -> str | None:
        """Why this compressor cannot run here (the run becomes a `skipped` record), or None."""
        if device not in self.devices:
            return f"{self.name} runs on {', '.join(sorted(self.devices))}, not {device}"
        return None

    @abstractmethod
    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        """Return the compressed model. May modify `model` in place."""

    def verify(self, before: Mapping[str, Any], after: ModelHandle) -> Verification:
        """Prove the compression happened. `before` is the census of the uncompressed model."""
        return Verification(passed=True, summary="nothing claimed")


@dataclass
class EvalOutput:
    """A task's accuracy on its evaluation examples."""

    metrics: dict[str, MetricValue]
    predictions: list[dict[str, Any]]
    """One JSON-able row per example: at least `id`, `prediction` and the references."""


class Task(ABC):
    """A task family: loads its model and data, predicts, scores, and compares predictions."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    primary_metric: ClassVar[str]

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Task:
        """Build from the suite's `task.options` mapping, validated by `Options`."""
        return cls(validate_options("task.options", cls.Options, mapping))

    @abstractmethod
    def load_model(self, source: Source, device: str, revision: str | None = None, **kwargs: Any) -> ModelHandle:
        """Load the uncompressed model from a local path or hub id (kwargs go to from_pretrained)."""

    @abstractmethod
    def load_examples(self, source: Source, split: str, limit: int | None) -> list[dict[str, Any]]:
        """The first `limit` examples of a split, in a fixed order, each with a stable `id`."""

    @abstractmethod
    def encode(self, tokenizer: Any, examples: Sequence[dict[str, Any]], seq_len: int) -> Any:
        """Tokenize examples into model features at a fixed sequence length."""

    @abstractmethod
    def batches(self, features: Any, batch_size: int, full_only: bool = False) -> list[Batch]:
        """Split encoded features into model inputs of `batch_size` (only full batches if `full_only`)."""

    @abstractmethod
    def evaluate(
        self, model: ModelHandle, examples: Sequence[dict[str, Any]], features: Any, batch_size: int
    ) -> EvalOutput:
        """Predict every example and score against its references."""

    @abstractmethod
    def agreement(
        self, predictions: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]
    ) -> dict[str, MetricValue]:
        """How closely `predictions` match the uncompressed model's, on the shared example ids."""

    def latency(
        self,
        model: ModelHandle,
        pool: Sequence[Batch],
        settings: LatencySettings,
        batch_size: int,
        sequence_length: int,
    ) -> dict[str, LatencyResult]:
        """Time the model on `pool` (real inputs at the run's shape). Default: the forward pass."""
        from bench.measure.latency import measure_latency

        forward = measure_latency(
            model.forward, pool, settings, batch_size, sequence_length, FORWARD_SCOPE, model.synchronize
        )
        return {"forward": forward}

    def train_batches(
        self, teacher: ModelHandle, examples: Sequence[dict[str, Any]], seq_len: int, batch_size: int
    ) -> list[Batch]:
        """Model inputs with their training labels, for compressors that train (distillation); `teacher`
        gives the tokenizer, and the outputs where the labels are the teacher's own."""
        raise NotImplementedError(f"task {self.name} does not provide training batches")

    def distillation_loss(
        self, student: Mapping[str, Any], teacher: Mapping[str, Any], batch: Batch, temperature: float, alpha: float
    ) -> Any:
        """alpha * soft-target loss against the teacher (at `temperature`) + (1 - alpha) * hard-label loss."""
        raise NotImplementedError(f"task {self.name} does not define a distillation loss")
