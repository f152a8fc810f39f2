"""One planned run: what the launcher hands a worker and what each record repeats."""

from __future__ import annotations

from pydantic import BaseModel

from bench.core.attention import Attention
from bench.core.devices import Device
from bench.core.shape import Shape
from bench.core.sources import Source
from bench.core.suite import CompressorConfig, MeasurementConfig, ModelConfig, TaskConfig


class RunSpec(BaseModel):
    """One run: a model, a compressor, a task, a device and an input shape."""

    suite: str
    model: ModelConfig
    model_source: Source
    """Resolved local folder, hub id, or shipped architecture."""
    task: TaskConfig
    dataset_source: Source
    calibration_source: Source | None = None
    tokenizer_corpus: list[str] = []
    """Resolved text files and folders for the tokenizer of a random-weight architecture."""
    compressor: CompressorConfig
    device: Device
    shape: Shape
    seed: int
    quick: bool
    measurement: MeasurementConfig
    threads: int
    plugins: dict[str, str] = {}
    """The distribution and version of each plugin the run uses (e.g. 'int8-dynamic': 'bench 0.1.0')."""
    bench_version: str = ""
    group: str
    """Key shared by the runs compared in one table: everything but the compressor."""
    key: str
    """Unique and stable for the same configuration; also the record's file stem."""
    retiming: int = 0
    """0 for an ordinary run; N for the Nth repeated timing of the same configuration in a fresh process,
    which measures latency only (the accuracy is the ordinary run's). See `retimed`."""

    @property
    def batch_size(self) -> int:
        """Inputs per timed call."""
        return self.shape.batch_size

    @property
    def sequence_length(self) -> int:
        """Tokens per input."""
        return self.shape.sequence_length

    @property
    def is_baseline(self) -> bool:
        """Whether this run is the uncompressed reference of its group."""
        return self.compressor.is_baseline

    @property
    def attention(self) -> Attention | None:
        """The attention implementation requested for this run (None: transformers' default)."""
        return self.compressor.attention or self.model.attention


def retimed(spec: RunSpec, round_: int) -> RunSpec:
    """The spec of repeated timing `round_` (>= 1) of `spec`: the same configuration under its own key."""
    if round_ < 1:
        raise ValueError("retiming rounds count from 1")
    return spec.model_copy(update={"retiming": round_, "key": f"{spec.key}__retime{round_}"})
