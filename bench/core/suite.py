"""The suite's typed configuration (every section of a suite file) and its one-line, field-level errors."""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import fields
from itertools import pairwise
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from bench.core.attention import Attention
from bench.core.devices import Device
from bench.core.errors import ConfigError, SuiteWarning
from bench.core.latency import LatencySettings

_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
NAME_MAX = 64
"""Suite names and row labels become file and folder names: keep them short."""
BASELINE = "baseline"
"""The identity compressor: the uncompressed reference of every group."""
SEED_MAX = 2**32 - 1
"""numpy's seeds are 0 .. 2**32 - 1."""


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, values are not coerced across types
    (`true` or `'10'` is not an integer)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelConfig(StrictModel):
    """The model to compress: a hub id, or a local path (relative to the suite file or the data dir);
    or, offline, a shipped `architecture` built with random weights and a tokenizer trained locally."""

    id: str | None = Field(default=None, min_length=1)
    revision: str | None = None
    label: str | None = None
    architecture: str | None = Field(default=None, min_length=1)
    """A config shipped in bench/architectures (real shapes); weights random, so accuracy is not meaningful."""
    overrides: dict[str, JsonValue] = Field(default_factory=dict)
    """For `architecture`: config values that replace the shipped ones (a smaller model for tests)."""
    tokenizer_corpus: list[str] = Field(default_factory=list)
    """For `architecture`: files or folders (relative to the suite or the data directory) whose text trains
    the tokenizer; default: the task's evaluation and calibration files."""
    attention: Attention | None = None
    """transformers' `attn_implementation` for every row (a row may set its own); default: transformers'
    choice (sdpa where the model family has it, else eager)."""

    def identity(self) -> dict[str, JsonValue]:
        """What names the model in run keys (an unset attention leaves the keys of older records alone)."""
        return self.model_dump(exclude=set() if self.attention else {"attention"})

    @model_validator(mode="after")
    def _id_or_architecture(self) -> ModelConfig:
        if (self.id is None) == (self.architecture is None):
            raise ValueError("give either `id` (a local folder or hub id) or `architecture` (random weights)")
        if (self.tokenizer_corpus or self.overrides) and self.architecture is None:
            raise ValueError("`tokenizer_corpus` and `overrides` go with `architecture`")
        if self.architecture is not None:
            from bench.core.architectures import shipped_architectures

            known = shipped_architectures()
            if self.architecture not in known:
                close = difflib.get_close_matches(self.architecture, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f"; shipped: {', '.join(known)}"
                raise ValueError(f"unknown architecture '{self.architecture}'{hint}")
        return self

    @property
    def display_name(self) -> str:
        """Short name shown in reports."""
        if self.label:
            return self.label
        if self.id is not None:
            return Path(self.id.rstrip("/")).name
        return f"{self.architecture}-random"


class TuningConfig(StrictModel):
    """The examples `bench tune` scores candidates on: never the evaluation examples."""

    split: str | None = None
    """Default: the evaluation split, from the example after the evaluated ones."""
    limit: PositiveInt = 300
    offset: NonNegativeInt | None = None
    """Examples of the split skipped first; default: the evaluated ones (task.limit) on the evaluation
    split, none on another split."""


class RungPlan(StrictModel):
    """Scoring in stages, as successive halving does: after each of `sizes` examples (ascending, each fewer
    than the run's), the paired 95% interval of `metric`'s change against the baseline is judged, and the
    evaluation stops when it lies wholly below `allowed_delta`. `bench tune` sets it on its candidates."""

    sizes: list[PositiveInt] = Field(min_length=1)
    metric: str = Field(min_length=1)
    """An accuracy metric of the task, e.g. `f1`."""
    allowed_delta: float
    """The largest loss against the baseline that may still keep the budget (usually negative)."""

    @field_validator("sizes")
    @classmethod
    def _ascending(cls, sizes: list[int]) -> list[int]:
        if any(b <= a for a, b in pairwise(sizes)):
            raise ValueError(f"rung sizes must ascend: {sizes}")
        return sizes


class TaskConfig(StrictModel):
    """Which task family, on which data, and how many evaluation examples."""

    name: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    split: str = "validation"
    limit: PositiveInt | None = None
    calibration_split: str = "train"
    calibration_dataset: str | None = None
    """Where calibration and training examples come from when not from `dataset` (a file or dataset name)."""
    config: dict[str, JsonValue] = Field(default_factory=dict)
    """The task plugin's settings, validated by its `Config` (`options` is the deprecated name)."""
    offset: NonNegativeInt = 0
    """Examples of the split skipped before the `limit` evaluated ones (`bench tune` trials use it)."""
    tuning: TuningConfig | None = None
    """Where `bench tune` draws its tuning examples (not used by `bench run`)."""
    rungs: RungPlan | None = None
    """Stop scoring early when the accuracy is already decided (`bench tune` candidates; None: score all)."""

    def identity(self) -> dict[str, JsonValue]:
        """What shapes a run's figures, for run keys and groups: the tuning section does not, nor a zero
        offset (so that records stored before these keys existed keep their keys). Rungs are left out too:
        they decide how much of a run is scored, not what a score means, so a staged run stays in its
        baseline's group (its key holds them)."""
        return self.model_dump(exclude={"tuning", "rungs", *(() if self.offset else ("offset",))})

    def tuning_slice(self, evaluated: int | None = None) -> TaskConfig:
        """The task as `bench tune` scores candidates: the tuning examples, disjoint from the evaluated ones
        (the first `evaluated` examples, default task.limit). ConfigError when they cannot be disjoint."""
        tuning = self.tuning or TuningConfig()
        split = tuning.split or self.split
        evaluated = max(evaluated or 0, self.limit or 0) or None
        if split == self.split:
            if evaluated is None:
                raise ConfigError(
                    f"task.tuning: the evaluation uses the whole '{split}' split, so no tuning slice is left "
                    "that is disjoint from it: give task.limit, or task.tuning.split"
                )
            start = evaluated if tuning.offset is None else tuning.offset
            if start < evaluated:
                raise ConfigError(
                    f"task.tuning.offset: {start} overlaps the {evaluated} evaluated examples of '{split}' "
                    f"(tuning examples must start at {evaluated} or later)"
                )
        else:
            start = tuning.offset or 0
        return self.model_copy(update={"split": split, "limit": tuning.limit, "offset": start, "tuning": None})

    @model_validator(mode="before")
    @classmethod
    def _options_is_config(cls, data: object) -> object:
        if isinstance(data, dict) and "options" in data:
            if "config" in data:
                raise ValueError("give `config` only: `options` is its deprecated name")
            warnings.warn("task.options is deprecated: call it task.config", SuiteWarning, stacklevel=2)
            data = {("config" if k == "options" else k): v for k, v in data.items()}
        return data


class CompressorStep(StrictModel):
    """One compressor of a chain."""

    name: str = Field(min_length=1)
    config: dict[str, JsonValue] = Field(default_factory=dict)


class CompressorConfig(StrictModel):
    """One row of the comparison: a compressor, or a `chain` of them applied in order as one run.

    `config` is validated by the plugin's own Config.
    """

    name: str | None = Field(default=None, min_length=1)
    label: str | None = None
    config: dict[str, JsonValue] = Field(default_factory=dict)
    chain: list[CompressorStep] | None = None
    attention: Attention | None = None
    """This row's attention implementation, replacing the model's (eager and sdpa rows side by side)."""

    def identity(self) -> dict[str, JsonValue]:
        """What names the row in run keys (an unset attention leaves the keys of older records alone)."""
        return self.model_dump(exclude=set() if self.attention else {"attention"})

    @property
    def steps(self) -> list[CompressorStep]:
        """The compressors to apply, in order."""
        if self.chain is not None:
            return list(self.chain)
        assert self.name is not None
        return [CompressorStep(name=self.name, config=self.config)]

    @property
    def is_baseline(self) -> bool:
        """Whether the row is the plain uncompressed reference (no settings, no chain, the model's attention)."""
        return self.name == BASELINE and not self.config and self.chain is None and self.attention is None

    @property
    def display_name(self) -> str:
        """The row name in reports: the label, the plugin name, or the chain joined with '+'."""
        return self.label or self.name or "+".join(step.name for step in self.steps)

    @field_validator("label")
    @classmethod
    def _label_is_slug(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL.fullmatch(value):
            raise ValueError("a label uses letters, digits, '.', '_', '+' and '-' only")
        if value is not None and len(value) > NAME_MAX:
            raise ValueError(f"a label has at most {NAME_MAX} characters (it names the record's file)")
        return value

    @model_validator(mode="after")
    def _name_or_chain(self) -> CompressorConfig:
        if (self.name is None) == (self.chain is None):
            raise ValueError("give either `name` (one compressor) or `chain` (a list of compressors)")
        if self.chain is not None:
            if len(self.chain) < 2:
                raise ValueError("a chain has at least two compressors")
            if self.config:
                raise ValueError("a chain's settings go in each step's `config`")
        return self


class MeasurementConfig(StrictModel):
    """How latency and memory are measured. The quick_* values replace the others under --quick."""

    warmup: NonNegativeInt = 10
    min_iterations: PositiveInt = 10
    min_duration_s: NonNegativeFloat = 10.0
    max_iterations: PositiveInt = 100_000
    max_duration_s: PositiveFloat = 300.0
    quick_warmup: NonNegativeInt = 3
    quick_min_iterations: PositiveInt = 10
    quick_min_duration_s: NonNegativeFloat = 1.0
    rounds: PositiveInt = Field(
        default=5,
        description="served rows of a group are timed again in this many interleaved rounds, each row for "
        "`round_s` per round in a rotating order, so that the machine's drift hits every row alike; 1: each "
        "row is timed once in its own window (always so under --quick)",
    )
    round_s: PositiveFloat = Field(default=2.0, description="seconds each row is timed in each round")
    fresh_rounds: bool = Field(
        default=True,
        description="load every row again in a fresh serving process for each round, so that a process's own "
        "luck (memory placement, kernel and thread choices: measured here at up to 20% for the same PyTorch "
        "model) varies between rounds and shows in the intervals; false: hold the rows' processes side by side "
        "when their memory fits",
    )
    threads: PositiveInt | None = Field(
        default=None, description="torch and onnxruntime intra-op threads; default: physical cores"
    )
    memory_interval_ms: PositiveFloat = 10.0
    timeout_s: PositiveFloat = 3600.0
    max_rss_gb: PositiveFloat | None = Field(
        default=None,
        description="the memory watchdog's limit on a run's resident memory (all its processes), in GB; "
        "a run that passes it is stopped and stored as `oom`; default: 80% of the machine's RAM",
    )

    def conditions(self) -> dict[str, object]:
        """The settings that shape the figures (run keys and `compare` use these): the watchdog's limit is
        a safety net, not a condition of the measurement."""
        return self.model_dump(exclude={"max_rss_gb"})

    def latency_settings(self) -> LatencySettings:
        """What the latency loop needs of these settings: each of its budget fields, by name."""
        budget = {f.name: getattr(self, f.name) for f in fields(LatencySettings) if f.name in type(self).model_fields}
        return LatencySettings(**budget)

    def slice_settings(self, first: bool) -> LatencySettings:
        """One row's slice of one interleaved round: `round_s` seconds, and a share of the iteration minimum;
        the row's `first` slice in a process warms up fully, later ones (the process stayed loaded, or was
        loaded again) with the quick warm-up."""
        return LatencySettings(
            warmup=self.warmup if first else min(self.warmup, self.quick_warmup),
            min_iterations=-(-self.min_iterations // self.rounds),
            min_duration_s=self.round_s,
            max_iterations=self.max_iterations,
            max_duration_s=max(self.round_s, self.max_duration_s / self.rounds),
        )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> MeasurementConfig:
        if self.max_iterations < self.min_iterations:
            raise ValueError("max_iterations must be >= min_iterations")
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s must be >= min_duration_s")
        return self


class SuiteConfig(StrictModel):
    """A whole suite: one model and task, the compressors, and the grid of devices and shapes."""

    name: str = Field(min_length=1)
    description: str = ""
    data_dir: str | None = None
    seed: int = Field(0, ge=0, le=SEED_MAX)
    model: ModelConfig
    task: TaskConfig
    compressors: list[CompressorConfig] = Field(min_length=1)
    devices: list[Device] = Field(default_factory=lambda: [Device("cpu")], min_length=1)
    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1], min_length=1)
    sequence_lengths: list[PositiveInt] = Field(default_factory=lambda: [384], min_length=1)
    measurement: MeasurementConfig = Field(default_factory=MeasurementConfig)

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not _SLUG.fullmatch(value):
            raise ValueError("the suite name is used as a folder: letters, digits, '.', '_' and '-' only")
        if len(value) > NAME_MAX:
            raise ValueError(f"the suite name is used as a folder: at most {NAME_MAX} characters")
        return value

    @model_validator(mode="after")
    def _labels_unique(self) -> SuiteConfig:
        seen: set[str] = set()
        for comp in self.compressors:
            if comp.display_name in seen:
                raise ValueError(f"compressor '{comp.display_name}' appears twice: give one of them a distinct `label`")
            seen.add(comp.display_name)
        return self


def short_repr(value: object, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config class that owns the last key of `loc`, to suggest close key names."""
    model: object = SuiteConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            return None
        model = candidates[0]
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def format_validation_error(error: ValidationError, prefix: str = "", owner: type[BaseModel] | None = None) -> str:
    """One line naming the first failing field (and how many more failed)."""
    # A misspelt key also makes its correct twin "missing": name the misspelling first.
    errors = sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    where = _location(loc)
    if first["type"] == "extra_forbidden":
        key = str(loc[-1])
        model = owner if owner is not None else _model_at(loc)
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(key, list(model.model_fields), n=1)
            if close:
                hint = f" (did you mean '{close[0]}'?)"
        message = f"unknown key{hint}"
    elif first["type"] == "missing":
        message = "required key is missing"
    else:
        message = first["msg"]
        if first["type"] not in ("value_error", "assertion_error") and "input" in first:
            message += f" (got {short_repr(first['input'])})"
        message = message.removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{prefix}{where}: {message}{more}"
