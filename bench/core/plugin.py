"""The plugin contract: what a compressor or a task receives and must return.

Everything a plugin author needs is declared here, and nothing else; docs/plugins.md explains it with one
complete example. The module never imports torch at module level (it is imported by `bench validate` and
`bench list`), and it imports no runtime: eager PyTorch models are `bench.runtimes.torch.TorchModel`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bench.core import devices
from bench.core.attention import executed, pattern
from bench.core.census import Census
from bench.core.errors import ConfigError
from bench.core.metrics import MetricValue
from bench.core.shape import Shape
from bench.core.sources import Source
from bench.core.suite import format_validation_error

if TYPE_CHECKING:
    import numpy as np
    import torch

    from bench.core.latency import DeviceTimer, LatencyResult, LatencySettings

FORWARD_SCOPE = "model forward on tokenized inputs (tokenization and decoding excluded), device synchronized"

Facts = dict[str, object]
"""Free-form facts a plugin reports, JSON-able (training losses, calibration ids, how a model was built)."""

Batch = Mapping[str, Any]
"""One model input: tensor name -> tensor (torch on the way in; a runtime may convert)."""


class Trait(str, Enum):
    """What a model in a chain still is, so that validation can refuse a chain that cannot work (see
    Compressor.requires and Compressor.removes). A freshly loaded model has every trait."""

    PYTORCH = "pytorch"
    """An eager PyTorch module (`TorchModel`)."""
    FLOAT_LINEAR = "float-linear"
    """Its Linear layers are float `torch.nn.Linear` modules (not quantized replacements)."""
    AS_LOADED = "as-loaded"
    """Unchanged since it was loaded: compressors that act at load time (bitsandbytes) need this."""


LOADED_TRAITS = frozenset(Trait)


class PluginConfig(BaseModel):
    """Base of every plugin's settings (a compressor's or a task's `config:` mapping in the suite):
    unknown keys are errors and the values are frozen. A plugin without settings uses it as is."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def validate_config(owner: str, config_class: type[PluginConfig], mapping: Mapping[str, object]) -> PluginConfig:
    """Validate a plugin's `config:` mapping; ConfigError names the field."""
    try:
        return config_class.model_validate(dict(mapping))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix=f"{owner}.", owner=config_class)) from None


JsonScalar = str | int | float | bool | None
"""A setting's value as a suite's YAML writes it."""


class Choice(BaseModel):
    """A searchable setting that takes one of `values`."""

    model_config = ConfigDict(frozen=True)
    values: tuple[JsonScalar, ...]


class IntRange(BaseModel):
    """A searchable integer setting: `low` to `high` inclusive, in steps of `step`."""

    model_config = ConfigDict(frozen=True)
    low: int
    high: int
    step: int = 1


class FloatRange(BaseModel):
    """A searchable real setting between `low` and `high` (on a log scale if `log`; multiples of `step` if
    given)."""

    model_config = ConfigDict(frozen=True)
    low: float
    high: float
    step: float | None = None
    log: bool = False


Dimension = Choice | IntRange | FloatRange
"""One axis of a compressor's search space (`bench tune`)."""


class ExecutedPrecision(BaseModel):
    """The precision a model's arithmetic really executes in, read back from its runtime (never from a row's
    name): how many compute operations (matrix products, fused kernels) run in each of f32, bf16, f16, int8
    or int4."""

    ops: dict[str, int]
    source: str
    """What was read: e.g. "openvino runtime graph", "onnxruntime optimized graph", "torch Linear layers"."""

    @property
    def total(self) -> int:
        """Compute operations counted."""
        return sum(self.ops.values())

    def share(self, precision: str) -> float:
        """The fraction of compute operations running in `precision`."""
        return self.ops.get(precision, 0) / self.total if self.total else 0.0

    @property
    def main(self) -> str | None:
        """The precision of most compute operations."""
        return max(self.ops, key=lambda p: self.ops[p]) if self.ops else None

    @property
    def label(self) -> str:
        """The precisions of at least 5% of the operations, most first: "f32", "int8+f32"."""
        kept = sorted((p for p in self.ops if self.share(p) >= 0.05), key=lambda p: -self.ops[p])
        return "+".join(kept) or "–"

    def contradiction(self, claimed: str | None) -> str | None:
        """Why this execution contradicts a claimed precision, or None (also without a claim or a count): a
        float claim must be the main precision; an int8 or int4 claim needs some operations in it."""
        if claimed is None or not self.total:
            return None
        counts = ", ".join(f"{n} {p}" for p, n in sorted(self.ops.items(), key=lambda i: -i[1]))
        if claimed in ("int8", "int4"):
            if self.ops.get(claimed):
                return None
            return f"claims {claimed} but no compute operation executes in {claimed} ({counts}; {self.source})"
        if self.main == claimed:
            return None
        return f"claims {claimed} but executes {self.label} ({counts}; {self.source})"


@dataclass(frozen=True)
class Compilation:
    """How a model was compiled (torch.compile): its settings and what compiling cost."""

    mode: str
    dynamic: bool | None
    seconds: float
    """The first, compiling call (and the graphs it built) in seconds."""
    graphs: int
    """Graphs built by that call."""


class ModelHandle(ABC):
    """A model ready to run: a runtime (eager PyTorch, ONNX Runtime, ...) plus its tokenizer.

    Tasks call `forward` (and `generate`); measurement calls `synchronize`, `save`, `tensors` and
    `operators`; verification may call any of them.
    """

    runtime: ClassVar[str]
    stages_inputs: ClassVar[bool] = False
    """Whether `stage` moves inputs onto the model's device (else a CUDA run's timed calls include the copy)."""
    """The runtime's name, e.g. "pytorch" or "onnxruntime" (shown in records)."""
    save_format: str = "files"
    """The format `save` writes, e.g. "safetensors", "torch" or "onnx" (the record's size.saved.format)."""

    def __init__(self, tokenizer: Any, device: str, config: Any = None) -> None:
        self.tokenizer = tokenizer
        self.device = device
        self.config = config
        """The transformers config of the model (architecture, `is_encoder_decoder`), when it has one."""
        self.compilation: Compilation | None = None
        """Set by a compressor that compiled the model; None: it runs as loaded."""

    def attention_implementation(self) -> str | None:
        """The attention kernels the model runs, read back from its transformers config (None without one;
        an exported graph keeps the implementation it was traced with)."""
        return executed(self.config)

    def attention_pattern(self) -> str | None:
        """Which query-key pairs attention computes ("full", a sliding window, block sparse), from the
        config (None without one)."""
        return None if self.config is None else pattern(self.config)

    @abstractmethod
    def forward(self, batch: Batch) -> Mapping[str, torch.Tensor]:
        """Run one batch; return the named outputs (for QA: start_logits, end_logits) as CPU-visible tensors."""

    @abstractmethod
    def save(self, directory: Path) -> list[Path]:
        """Serialize the model's weights and graph as a user would ship them; return the files written."""

    @abstractmethod
    def tensors(self) -> Iterator[tuple[str, Any]]:
        """Every weight tensor (torch or numpy), for parameter, sparsity and dtype census."""

    def operators(self) -> dict[str, int] | None:
        """Operator census of the model's graph (op type -> count), or None for runtimes without a graph."""
        return None

    def executed_precision(self) -> ExecutedPrecision | None:
        """What the runtime really executes (read back from it), or None where it cannot be read."""
        return None

    def rows_independent(self) -> bool:
        """Whether each input's outputs are independent of the other inputs of its call and of padding, up
        to float rounding: False where activation scales are computed over the whole call (dynamic int8).
        Tasks batch and trim evaluation inputs only where this holds."""
        return True

    def synchronize(self) -> None:
        """Wait for queued device work (CUDA) so that timings cover it. No-op on CPU."""

    def release(self) -> None:
        """Free what the model holds, when a compressor replaces it with a newly loaded one (the handle is
        not used afterwards). Default: nothing (its memory goes when the last reference does)."""

    def device_timer(self) -> DeviceTimer | None:
        """A timer of calls on the device itself (CUDA events), cross-checking the wall clock. Default: none."""
        return None

    def stage(self, batch: Batch) -> Batch:
        """`batch` placed where the model reads its inputs (its device), so that timed calls do not copy
        them. Default: unchanged (see `stages_inputs`)."""
        return batch

    def generate(
        self, batch: Batch, settings: Mapping[str, Any], on_token: Callable[[], None] | None = None
    ) -> torch.Tensor:
        """Generated token ids, one row per input (sequence-to-sequence models): `settings` are
        transformers generation arguments; `on_token` is called after each decoding step."""
        raise NotImplementedError(f"{self.runtime} models of this kind do not generate text")


class Verification(BaseModel):
    """What a compressor proved about its output. `passed=False` makes the run a failed run."""

    passed: bool
    summary: str
    checks: Facts = {}
    proven: bool = True
    """False when the compressor claims nothing (the default `verify`): reports flag the run as unverified."""


@dataclass
class CalibrationData:
    """Model inputs drawn from the task's training split, and the ids of the examples they came from."""

    batches: list[Batch]
    example_ids: list[str]

    def single_inputs(self) -> list[dict[str, np.ndarray]]:
        """Every input on its own (batch of one) as numpy arrays: what ONNX Runtime's and NNCF's calibration
        readers take."""
        return [
            {name: batch[name][i : i + 1].cpu().numpy() for name in batch}
            for batch in self.batches
            for i in range(len(batch["input_ids"]))
        ]


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
    shape: Shape
    """The run's input shape (batch size, sequence length)."""
    model_source: Source
    """Where the uncompressed model was loaded from (a local folder or a hub id)."""
    calibration_split: str
    """The name of the training split that `calibration_data` and `training_examples` draw from."""
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
    training_source: Source | None = None
    """Where `training_examples` and `calibration_data` read the training split (cache keys name it)."""
    model_revision: str | None = None
    """The suite's revision of a hub model (None: the default branch, or a local folder)."""
    chain_before: tuple[str, ...] = ()
    """The steps applied before this one in a chain, as canonical JSON of name and config (cache keys)."""
    notes: list[str] = field(default_factory=list)
    """Hardware notes that the compressor adds (shown as flags in reports)."""
    facts: Facts = field(default_factory=dict)
    """What the compressor did, stored in the record's `compression` (calibration ids, training time...)."""


class Compressor(ABC):
    """A way to shrink a model. Subclasses set `name`, `description`, `Config`, `devices` and, for chains,
    `requires`; they implement `compress` and `verify`."""

    name: ClassVar[str]
    """The registry key; must equal the entry-point name the plugin is registered under."""
    description: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    """Validates the suite's `config:` mapping; the instance holds the result as `self.config`."""
    devices: ClassVar[frozenset[str]] = frozenset({"cpu", "cuda"})
    """Where it can run; on another device the run is a `skipped` record with the reason."""
    needs_training_split: ClassVar[bool] = False
    """Whether it draws calibration or training examples: validation refuses a suite without that split."""
    requires: ClassVar[frozenset[Trait]] = frozenset({Trait.PYTORCH})
    """Traits the incoming model must have; checked along chains at validation."""
    precision: ClassVar[str | None] = None
    """The precision its output claims to execute in ("f32", "bf16", "f16", "int8", "int4"), checked against
    what the runtime reports (a row that claims f32 and executes bf16 fails); None: no claim of its own (a
    chain keeps the last claim made before it, as pruning keeps the precision of what it received)."""
    search_space: ClassVar[Mapping[str, Dimension]] = {}
    """Settings `bench tune --strategy optuna` may vary, by `Config` field name; the row's own values are the
    starting point. Empty: the compressor is used as the suite configures it."""
    layer_setting: ClassVar[str | None] = None
    """The `Config` field (a list of regular expressions over layer names, re.search) that keeps layers in
    float: `bench tune --strategy sensitivity` ranks layers by what quantizing each costs and fills it."""
    claim_survives_chain: ClassVar[bool] = True
    """Whether `verify` still holds on the final model of a chain; when False, a claim that a later step
    undid is reported as undone instead of failing the run."""

    def __init__(self, config: PluginConfig) -> None:
        self.config = config

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object], where: str = "config") -> Compressor:
        """Build from the suite's `config:` mapping, validated by `Config`."""
        return cls(validate_config(where, cls.Config, mapping))

    def unsupported_reason(self, device: str, cpu_flags: frozenset[str]) -> str | None:
        """Why this compressor cannot run here (the run becomes a `skipped` record), or None."""
        if devices.kind(device) not in self.devices:
            return f"{self.name} runs on {', '.join(sorted(self.devices))}, not {device}"
        return None

    def removes(self) -> frozenset[Trait]:
        """Traits the returned model no longer has (by default it is no longer as loaded)."""
        return frozenset({Trait.AS_LOADED})

    @abstractmethod
    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        """Return the compressed model (a ModelHandle, never None). May modify `model` in place."""

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        """Prove the compression happened. `before` is the census of the model this step received; `after`
        is the model `compress` returned (and, in a chain, again the final model). Default: no claim."""
        return Verification(passed=True, summary="nothing claimed", proven=False)


@dataclass
class EvalOutput:
    """A task's accuracy on its evaluation examples."""

    metrics: dict[str, MetricValue]
    predictions: list[dict[str, Any]]
    """One JSON-able row per example: at least `id`, `prediction` and the references."""


class Task(ABC):
    """A task family: loads its model and data, predicts, scores, and compares predictions."""

    name: ClassVar[str]
    """The registry key; must equal the entry-point name."""
    description: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    """Validates the suite's `task.config` mapping; the instance holds the result as `self.config`."""
    primary_metric: ClassVar[str]
    """The accuracy metric that represents the task (stored in each record; reports plot it)."""

    def __init__(self, config: PluginConfig) -> None:
        self.config = config

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object]) -> Task:
        """Build from the suite's `task.config` mapping, validated by `Config`."""
        return cls(validate_config("task.config", cls.Config, mapping))

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

    def evaluation_batch_size(self, shape: Shape, model: ModelHandle) -> int:
        """Inputs per call in accuracy runs of `model` (recorded beside the evaluation memory peak). Default:
        the run's."""
        return shape.batch_size

    def fills_inputs(self) -> bool:
        """Whether inputs are filled with real text to the sequence length (padding in timed inputs is then
        a defect the run notes). Default: no."""
        return False

    @abstractmethod
    def evaluate(
        self, model: ModelHandle, examples: Sequence[dict[str, Any]], features: Any, batch_size: int
    ) -> EvalOutput:
        """Predict every example, `batch_size` inputs per call, and score against its references."""

    @abstractmethod
    def agreement(
        self, predictions: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]
    ) -> dict[str, MetricValue]:
        """How closely `predictions` match the uncompressed model's, on the shared example ids."""

    def latency(
        self, model: ModelHandle, pool: Sequence[Batch], settings: LatencySettings, shape: Shape
    ) -> dict[str, LatencyResult]:
        """Time the model on `pool` (real inputs at the run's shape). Default: the forward pass."""
        from bench.core.latency import measure_latency

        forward = measure_latency(
            model.forward, pool, settings, shape, FORWARD_SCOPE, model.synchronize, model.device_timer()
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
