"""The task contract: a task family loads its model and data, encodes examples into features of its own type,
predicts, scores, and compares predictions with the baseline's."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, JsonValue
from typing_extensions import Self

from bench.core.metrics import MetricValue
from bench.core.model import FORWARD_SCOPE, Batch, ModelHandle, Outputs, Tokenizer
from bench.core.settings import Example, PluginConfig, Prediction, validate_config
from bench.core.shape import Shape
from bench.core.sources import Source

if TYPE_CHECKING:
    from torch import Tensor

    from bench.core.latency import LatencyResult, LatencySettings


class SuiteDefaults(BaseModel):
    """What a suite built from the command line (`bench run --model M --task T`) takes for this task: the data
    set and splits of the data directory, the input length, and the task's settings."""

    model_config = ConfigDict(frozen=True)
    dataset: str
    split: str
    calibration_split: str = "train"
    sequence_length: int
    config: dict[str, JsonValue] = {}


class Features(Protocol):
    """Encoded examples: whatever a task's `encode` builds, with one entry per model input window."""

    def __len__(self) -> int: ...


F = TypeVar("F", bound=Features)


@dataclass
class EvalOutput:
    """A task's accuracy on its evaluation examples."""

    metrics: dict[str, MetricValue]
    predictions: list[Prediction]
    """One row per example: at least `id`, `prediction` and the references."""


class Task(ABC, Generic[F]):
    """A task family: loads its model and data, predicts, scores, and compares predictions. `F` is the type of
    its encoded features (what `encode` returns and `batches` and `evaluate` take)."""

    name: ClassVar[str]
    """The registry key; must equal the entry-point name."""
    description: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    """Validates the suite's `task.config` mapping; the instance holds the result as `self.config`."""
    primary_metric: ClassVar[str]
    """The accuracy metric that represents the task (stored in each record; reports plot it)."""
    suite_defaults: ClassVar[SuiteDefaults | None] = None
    """The task's part of a suite built from command-line flags; None: the task needs a suite file."""

    def __init__(self, config: PluginConfig) -> None:
        self.config = config

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object]) -> Self:
        """Build from the suite's `task.config` mapping, validated by `Config`."""
        return cls(validate_config("task.config", cls.Config, mapping))

    @abstractmethod
    def load_model(
        self, source: Source, device: str, revision: str | None = None, **from_pretrained: object
    ) -> ModelHandle:
        """Load the uncompressed model from a local path or hub id (keyword arguments go to from_pretrained)."""

    @abstractmethod
    def load_examples(self, source: Source, split: str, limit: int | None) -> list[Example]:
        """The first `limit` examples of a split, in a fixed order, each with a stable `id`."""

    @abstractmethod
    def encode(self, tokenizer: Tokenizer, examples: Sequence[Example], seq_len: int) -> F:
        """Tokenize examples into model features at a fixed sequence length."""

    @abstractmethod
    def batches(self, features: F, batch_size: int, full_only: bool = False) -> list[Batch]:
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
    def evaluate(self, model: ModelHandle, examples: Sequence[Example], features: F, batch_size: int) -> EvalOutput:
        """Predict every example, `batch_size` inputs per call, and score against its references."""

    def score_predictions(self, rows: Sequence[Prediction]) -> dict[str, MetricValue] | None:
        """The metrics of prediction rows as `evaluate` writes them, so that a run can be scored in stages
        (`RungPlan`) and still report what one `evaluate` call over all its examples would. Default: None, the
        task cannot, and its runs score every example at once."""
        return None

    @abstractmethod
    def agreement(self, predictions: Sequence[Prediction], baseline: Sequence[Prediction]) -> dict[str, MetricValue]:
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
        self, teacher: ModelHandle, examples: Sequence[Example], seq_len: int, batch_size: int
    ) -> list[Batch]:
        """Model inputs with their training labels, for compressors that train (distillation); `teacher`
        gives the tokenizer, and the outputs where the labels are the teacher's own."""
        raise NotImplementedError(f"task {self.name} does not provide training batches")

    def distillation_loss(
        self, student: Outputs, teacher: Outputs, batch: Batch, temperature: float, alpha: float
    ) -> Tensor:
        """alpha * soft-target loss against the teacher (at `temperature`) + (1 - alpha) * hard-label loss."""
        raise NotImplementedError(f"task {self.name} does not define a distillation loss")
