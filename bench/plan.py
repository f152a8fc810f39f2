"""Expand a suite into runs, each with a stable key (a hash of its canonical configuration)."""

from __future__ import annotations

import hashlib
import json
from itertools import product
from pathlib import Path
from typing import Any

from bench import __version__
from bench.core.shape import Shape
from bench.core.sources import Source
from bench.core.spec import RunSpec
from bench.core.suite import BASELINE, MeasurementConfig, SuiteConfig

__all__ = ["BASELINE", "RunSpec", "expand", "results_folder"]


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
            "rounds": 1,
        }
    )


def expand(
    suite: SuiteConfig,
    *,
    model_source: Source,
    dataset_source: Source,
    calibration_source: Source | None,
    threads: int,
    plugins: dict[str, str] | None = None,
    tokenizer_corpus: list[str] | None = None,
    limit: int | None = None,
    quick: bool = False,
) -> list[RunSpec]:
    """All runs of a suite, baselines first within each group so that agreement can use them. `plugins` maps
    each plugin name to its distribution and version: a new version of a plugin is a new run."""
    task = suite.task if limit is None else suite.task.model_copy(update={"limit": limit})
    measurement = effective_measurement(suite.measurement, quick)
    versions = plugins or {}
    runs: list[RunSpec] = []
    for device, batch_size, seq_len in product(suite.devices, suite.batch_sizes, suite.sequence_lengths):
        group_payload = {
            "suite": suite.name,
            "model": suite.model.identity(),
            "task": task.identity(),
            "device": device,
            "batch_size": batch_size,
            "sequence_length": seq_len,
            "seed": suite.seed,
            "quick": quick,
            "measurement": measurement.conditions(),
            "threads": threads,
        }
        group = _digest(group_payload)[:12]
        ordered = sorted(suite.compressors, key=lambda c: not c.is_baseline)
        for comp in ordered:
            used = {name: versions[name] for name in (task.name, *(s.name for s in comp.steps)) if name in versions}
            identity = {**group_payload, "compressor": comp.identity(), "plugins": used, "bench": __version__}
            if task.rungs is not None and not comp.is_baseline:
                identity["rungs"] = task.rungs.model_dump()
            digest = _digest(identity)[:10]
            key = f"{comp.display_name}__{device.replace(':', '')}__bs{batch_size}__seq{seq_len}__{digest}"
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
                    shape=Shape(batch_size=batch_size, sequence_length=seq_len),
                    seed=suite.seed,
                    quick=quick,
                    measurement=measurement,
                    threads=threads,
                    plugins=used,
                    bench_version=__version__,
                    group=group,
                    key=key,
                )
            )
    return runs


def results_folder(results_dir: Path, machine: str, suite: str) -> Path:
    """Where a suite's records live: results/<machine>/<suite>/."""
    return results_dir / machine / suite
