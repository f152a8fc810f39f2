"""Expand a suite into runs, each with a stable key (a hash of its canonical configuration)."""

from __future__ import annotations

import hashlib
import json
from itertools import product
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.config import CompressorConfig, MeasurementConfig, ModelConfig, SuiteConfig, TaskConfig

BASELINE = "baseline"


class RunSpec(BaseModel):
    """One run: a model, a compressor, a task, a device and an input shape."""

    suite: str
    model: ModelConfig
    model_source: str
    """Resolved local path, or the hub id."""
    task: TaskConfig
    dataset_source: str
    calibration_source: str | None = None
    tokenizer_corpus: list[str] = []
    """Resolved text files and folders for the tokenizer of a random-weight architecture."""
    compressor: CompressorConfig
    device: str
    batch_size: int
    sequence_length: int
    seed: int
    quick: bool
    measurement: MeasurementConfig
    threads: int
    group: str
    """Key shared by the runs compared in one table: everything but the compressor."""
    key: str
    """Unique and stable for the same configuration; also the record's file stem."""

    @property
    def is_baseline(self) -> bool:
        """Whether this run is the uncompressed reference of its group."""
        return self.compressor.name == BASELINE and not self.compressor.config and self.compressor.chain is None


def _digest(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def effective_measurement(measurement: MeasurementConfig, quick: bool) -> MeasurementConfig:
    """The measurement settings in force: under --quick, the quick_* values replace the full ones."""
    if not quick:
        return measurement
    return measurement.model_copy(
        update={
            "warmup": measurement.quick_warmup,
            "min_iterations": measurement.quick_min_iterations,
            "min_duration_s": measurement.quick_min_duration_s,
            "max_duration_s": max(measurement.quick_min_duration_s, min(measurement.max_duration_s, 60.0)),
        }
    )


def expand(
    suite: SuiteConfig,
    *,
    model_source: str,
    dataset_source: str,
    calibration_source: str | None,
    threads: int,
    tokenizer_corpus: list[str] | None = None,
    limit: int | None = None,
    quick: bool = False,
) -> list[RunSpec]:
    """All runs of a suite, baselines first within each group so that agreement can use them."""
    task = suite.task if limit is None else suite.task.model_copy(update={"limit": limit})
    measurement = effective_measurement(suite.measurement, quick)
    runs: list[RunSpec] = []
    for device, batch_size, seq_len in product(suite.devices, suite.batch_sizes, suite.sequence_lengths):
        group_payload = {
            "suite": suite.name,
            "model": suite.model.model_dump(),
            "task": task.model_dump(),
            "device": device,
            "batch_size": batch_size,
            "sequence_length": seq_len,
            "seed": suite.seed,
            "quick": quick,
            "measurement": measurement.model_dump(),
            "threads": threads,
        }
        group = _digest(group_payload)[:12]
        ordered = sorted(suite.compressors, key=lambda c: c.name != BASELINE or bool(c.config))
        for comp in ordered:
            digest = _digest({**group_payload, "compressor": comp.model_dump()})[:10]
            key = f"{comp.display_name}__{device}__bs{batch_size}__seq{seq_len}__{digest}"
            runs.append(
                RunSpec(
                    suite=suite.name,
                    model=suite.model,
                    model_source=model_source,
                    task=task,
                    dataset_source=dataset_source,
                    calibration_source=calibration_source,
                    tokenizer_corpus=tokenizer_corpus or [],
                    compressor=comp,
                    device=device,
                    batch_size=batch_size,
                    sequence_length=seq_len,
                    seed=suite.seed,
                    quick=quick,
                    measurement=measurement,
                    threads=threads,
                    group=group,
                    key=key,
                )
            )
    return runs


def results_folder(results_dir: Path, machine: str, suite: str) -> Path:
    """Where a suite's records live: results/<machine>/<suite>/."""
    return results_dir / machine / suite
