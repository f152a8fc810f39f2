"""The compressor contract: what a compressor receives (`CompressContext`), must return, and must prove
(`Verification`), and the traits that chains are checked against."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import ClassVar, Protocol

from pydantic import BaseModel
from typing_extensions import Self

from bench.core.census import Census, HostArray
from bench.core.devices import Device
from bench.core.model import Batch, ModelHandle
from bench.core.settings import Dimension, Example, Facts, JsonScalar, PluginConfig, validate_config
from bench.core.shape import Shape
from bench.core.sources import Source
from bench.core.task import Task


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


class Reload(Protocol):
    """Loads the uncompressed model again; keyword arguments go to from_pretrained."""

    def __call__(self, **from_pretrained: object) -> ModelHandle: ...


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

    def single_inputs(self) -> list[dict[str, HostArray]]:
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

    device: Device
    seed: int
    """The suite's seed: every random step of a compressor (training included) is seeded with it, and cache
    keys of what it trains name it."""
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
    reload: Reload
    """Load the uncompressed model again, passing keyword arguments to from_pretrained (e.g. a
    quantization_config). For compressors that act at load time, such as bitsandbytes."""
    example_batch: Callable[[], Batch]
    """One input at the run's shape, for tracing and export (not for calibration)."""
    calibration_data: Callable[[int], CalibrationData]
    """`n` examples from the task's training split (never its evaluation split), as batches."""
    training_examples: Callable[[int | None], list[Example]]
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
    presets: ClassVar[Mapping[str, Mapping[str, JsonScalar]]] = {}
    """Named rows of common settings (e.g. `int8-dynamic-ort`: backend onnxruntime), which
    `bench run --compressor NAME` accepts as it accepts the compressor's own name."""
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
    def from_mapping(cls, mapping: Mapping[str, object], where: str = "config") -> Self:
        """Build from the suite's `config:` mapping, validated by `Config`."""
        return cls(validate_config(where, cls.Config, mapping))

    def unsupported_reason(self, device: Device, cpu_flags: frozenset[str]) -> str | None:
        """Why this compressor cannot run here (the run becomes a `skipped` record), or None."""
        if device.kind not in self.devices:
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
