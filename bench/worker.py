"""The child process of one run: a RunSpec in, a RunRecord (and its predictions) out.

Started as `python -m bench.worker JOB.json` by a launcher. Whatever happens inside (an exception, a
compressor that proves it did nothing, an unsupported device), a record is written; only a hard crash
or a timeout leaves none, and the launcher then writes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench import __version__
from bench.api import CalibrationData, CompressContext, ModelHandle, Task, Verification
from bench.datadir import Source
from bench.environment import capture, cpu_flags, machine_name
from bench.errors import CompressionNotApplied, UnsupportedHere
from bench.measure.census import take_census
from bench.measure.contention import BUSY_THRESHOLD, CpuContention
from bench.measure.latency import LatencySettings
from bench.measure.memory import RssSampler, max_rss_bytes, release_freed_memory
from bench.measure.size import measure_saved
from bench.plan import RunSpec
from bench.records import (
    PREDICTIONS_SUFFIX,
    Accuracy,
    Agreement,
    ErrorInfo,
    Memory,
    RunRecord,
    Size,
    Status,
    read_predictions,
    save_record,
    write_predictions,
)
from bench.registry import load_compressor, load_task

LATENCY_INPUT_POOL = 32


class Job(BaseModel):
    """What the launcher hands the worker."""

    spec: RunSpec
    folder: str
    baseline_predictions: str | None = None


def now() -> str:
    """UTC time stamp, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def error_info(exc: BaseException, limit: int = 4000) -> ErrorInfo:
    """Type, message and the end of the traceback."""
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return ErrorInfo(type=type(exc).__name__, message=str(exc).strip()[:2000], traceback_tail=tail[-limit:])


def set_threads_and_seed(threads: int, seed: int) -> None:
    """Pin intra-op threads (torch; onnxruntime reads the spec) and seed every generator."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set once in this process
        torch.set_num_interop_threads(1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class RunState:
    """Collects the record's parts as the phases complete, so a failure keeps what was measured."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.started_at = now()
        self.t0 = time.perf_counter()
        self.phases: dict[str, float] = {}
        self.fields: dict[str, Any] = {"notes": [], "weights": "random" if spec.model.architecture else "pretrained"}

    @contextmanager
    def phase(self, name: str, sampler: RssSampler | None = None) -> Iterator[None]:
        """Time a phase (and attribute its memory samples to it)."""
        start = time.perf_counter()
        try:
            if sampler is not None:
                with sampler.phase(name):
                    yield
            else:
                yield
        finally:
            self.phases[name] = time.perf_counter() - start

    def record(self, status: Status, error: ErrorInfo | None = None) -> RunRecord:
        """The record as it stands."""
        return RunRecord(
            status=status,
            spec=self.spec,
            machine=machine_name(),
            bench_version=__version__,
            started_at=self.started_at,
            finished_at=now(),
            wall_s=time.perf_counter() - self.t0,
            phases_s=self.phases,
            error=error,
            **self.fields,
        )


def _cuda_reset(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def _memory(sampler: RssSampler, rss_start: int, device: str) -> Memory:
    cuda_alloc = cuda_reserved = None
    if device.startswith("cuda"):
        import torch

        cuda_alloc = int(torch.cuda.max_memory_allocated())
        cuda_reserved = int(torch.cuda.max_memory_reserved())
    steady = [sampler.peaks[p] for p in ("latency", "evaluate") if p in sampler.peaks]
    return Memory(
        interval_ms=sampler.interval_s * 1000,
        samples=sampler.samples,
        rss_at_start=rss_start,
        load_peak=sampler.peaks.get("load"),
        compress_peak=sampler.peaks.get("compress"),
        steady_peak=max(steady) if steady else None,
        process_max_rss=max_rss_bytes(),
        phase_peaks=dict(sampler.peaks),
        cuda_max_allocated=cuda_alloc,
        cuda_max_reserved=cuda_reserved,
    )


def execute(job: Job) -> RunRecord:
    """Run every phase of one spec and return its record (status ok, skipped or error)."""
    spec = job.spec
    state = RunState(spec)
    sampler = RssSampler(spec.measurement.memory_interval_ms / 1000).start()
    rss_start = sampler.current()
    status, error = Status.OK, None
    try:
        _execute(job, state, sampler)
    except UnsupportedHere as exc:
        status, error = Status.SKIPPED, ErrorInfo(type="UnsupportedHere", message=str(exc))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # also Rust panics surfacing from tokenizers (pyo3 PanicException)
        status, error = Status.ERROR, error_info(exc)
    sampler.stop()
    state.fields["memory"] = _memory(sampler, rss_start, spec.device)
    return state.record(status, error)


def cache_dir() -> Path:
    """Persistent artefacts (trained students): $BENCH_CACHE_DIR, or ~/.cache/bench."""
    return Path(os.environ.get("BENCH_CACHE_DIR") or Path.home() / ".cache" / "bench")


def combine(verifications: list[tuple[str, Verification]]) -> Verification:
    """One verification for a chain: passed if every step passed."""
    if len(verifications) == 1:
        return verifications[0][1]
    return Verification(
        passed=all(v.passed for _, v in verifications),
        summary="; ".join(f"{name}: {v.summary}" for name, v in verifications),
        checks={name: v.checks for name, v in verifications},
    )


def build_context(
    spec: RunSpec, task: Task, tokenizer: Any, workdir: Path, flags: frozenset[str], model_source: Source
) -> CompressContext:
    """The CompressContext of a run: its data access is lazy, so compressors that need none cost nothing."""
    data_source = Source.infer(spec.dataset_source)
    calibration = Source.infer(spec.calibration_source) if spec.calibration_source else None

    def training_examples(n: int | None) -> list[dict[str, Any]]:
        if calibration is None:
            raise UnsupportedHere(f"no training split '{spec.task.calibration_split}' for this dataset")
        return task.load_examples(calibration, spec.task.calibration_split, n)

    def calibration_data(n: int) -> CalibrationData:
        rows = training_examples(n)
        batches = task.batches(task.encode(tokenizer, rows, spec.sequence_length), spec.batch_size)
        return CalibrationData(batches=batches, example_ids=[r["id"] for r in rows])

    def example_batch() -> Any:
        rows = task.load_examples(data_source, spec.task.split, spec.batch_size)
        return task.batches(task.encode(tokenizer, rows, spec.sequence_length), spec.batch_size)[0]

    def reload(**kwargs: Any) -> ModelHandle:
        return task.load_model(model_source, spec.device, spec.model.revision, **kwargs)

    return CompressContext(
        device=spec.device,
        seed=spec.seed,
        workdir=workdir,
        threads=spec.threads,
        cpu_flags=flags,
        task=task,
        batch_size=spec.batch_size,
        sequence_length=spec.sequence_length,
        model_source=model_source.location,
        reload=reload,
        example_batch=example_batch,
        calibration_data=calibration_data,
        training_examples=training_examples,
        cache_dir=cache_dir(),
    )


def build_random_model(spec: RunSpec, state: RunState) -> Source:
    """Build (or find cached) the suite's random-weight architecture; mark the record `weights: random`."""
    from bench.random_models import materialize

    assert spec.model.architecture is not None
    folder, facts = materialize(
        spec.model.architecture, spec.tokenizer_corpus, spec.seed, cache_dir(), spec.model.overrides
    )
    state.fields["model_info"] = facts  # `weights: random` is set from the spec when the run starts
    state.fields["notes"].append(
        f"random weights ({spec.model.architecture} shapes, tokenizer trained here): "
        "accuracy is not meaningful; latency, memory, size and agreement are"
    )
    if facts["tokenizer_vocab"] < facts["vocab_size"]:
        state.fields["notes"].append(
            f"the tokenizer corpus gave {facts['tokenizer_vocab']:,} of {facts['vocab_size']:,} tokens; "
            "the embedding keeps the real number of rows"
        )
    return Source(str(folder), local=True)


def _execute(job: Job, state: RunState, sampler: RssSampler) -> None:
    spec = job.spec
    flags = cpu_flags()
    steps = [(step.name, load_compressor(step.name).from_mapping(step.config)) for step in spec.compressor.steps]
    task_cls: type[Task] = load_task(spec.task.name)
    task = task_cls.from_mapping(spec.task.options)
    state.fields["environment"] = capture(threads=spec.threads, seed=spec.seed)
    for _, compressor in steps:
        reason = compressor.unsupported_reason(spec.device, flags)
        if reason is not None:
            raise UnsupportedHere(reason)
    if spec.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UnsupportedHere("no CUDA device on this machine")

    set_threads_and_seed(spec.threads, spec.seed)
    state.fields["environment"] = capture(threads=spec.threads, seed=spec.seed)  # now with GPUs
    _cuda_reset(spec.device)
    model_source = Source.infer(spec.model_source)
    if spec.model.architecture is not None:
        with state.phase("build"):
            model_source = build_random_model(spec, state)
    with state.phase("load", sampler):
        model: ModelHandle = task.load_model(model_source, spec.device, spec.model.revision)
    census_before = take_census(model.tensors())
    tokenizer = model.tokenizer

    folder = Path(job.folder)
    workdir = folder / ".work" / spec.key
    data_source = Source.infer(spec.dataset_source)
    ctx = build_context(spec, task, tokenizer, workdir, flags, model_source)
    ctx.notes = state.fields["notes"]
    state.fields["compression"] = ctx.facts
    verifications: list[tuple[str, Verification]] = []
    compressed = model
    del model
    with state.phase("compress", sampler):
        for i, (name, compressor) in enumerate(steps):
            before = census_before if i == 0 else take_census(compressed.tensors())
            compressed = compressor.compress(compressed, ctx)
            verifications.append((name, compressor.verify(before.model_dump(), compressed)))
            if not verifications[-1][1].passed:
                break
    release_freed_memory()
    verification = combine(verifications)
    state.fields["verification"] = verification
    if not verification.passed:
        raise CompressionNotApplied(f"{spec.compressor.display_name}: verification failed: {verification.summary}")

    with state.phase("save"):
        saved_dir = workdir / "saved"
        files = compressed.save(saved_dir)
        fmt = getattr(compressed, "save_format", compressed.runtime)
        state.fields["size"] = Size(
            saved=measure_saved(files, saved_dir, fmt),
            census_before=census_before,
            census_after=take_census(compressed.tensors()),
        )

    with state.phase("prepare"):
        examples = task.load_examples(data_source, spec.task.split, spec.task.limit)
        features = task.encode(compressed.tokenizer, examples, spec.sequence_length)
        pool = task.batches(
            task.encode(compressed.tokenizer, examples[: LATENCY_INPUT_POOL * spec.batch_size], spec.sequence_length),
            spec.batch_size,
            full_only=True,
        )
        if not pool:
            pool = task.batches(features, spec.batch_size)[:1]

    settings = LatencySettings(
        warmup=spec.measurement.warmup,
        min_iterations=spec.measurement.min_iterations,
        min_duration_s=spec.measurement.min_duration_s,
        max_iterations=spec.measurement.max_iterations,
        max_duration_s=spec.measurement.max_duration_s,
    )
    contention = CpuContention.start()
    with state.phase("latency", sampler):
        timings = task.latency(compressed, pool, settings, spec.batch_size, spec.sequence_length)
    busy = round(contention.share(), 4)
    state.fields["latency"] = {name: r.model_copy(update={"other_cpu_share": busy}) for name, r in timings.items()}
    if busy > BUSY_THRESHOLD:
        state.fields["notes"].append(
            f"other processes used {100 * busy:.0f}% of the CPU while latency was timed: these timings are unreliable"
        )

    with state.phase("evaluate", sampler):
        result = task.evaluate(compressed, examples, features, spec.batch_size)
    predictions_path = folder / f"{spec.key}{PREDICTIONS_SUFFIX}"
    write_predictions(predictions_path, result.predictions)
    state.fields["accuracy"] = Accuracy(
        metrics=result.metrics, n_examples=len(examples), predictions_file=predictions_path.name
    )
    if job.baseline_predictions and Path(job.baseline_predictions).is_file():
        baseline_rows = read_predictions(Path(job.baseline_predictions))
        state.fields["agreement"] = Agreement(
            baseline_key=Path(job.baseline_predictions).name.removesuffix(PREDICTIONS_SUFFIX),
            metrics=task.agreement(result.predictions, baseline_rows),
            n_examples=len({r["id"] for r in baseline_rows} & {r["id"] for r in result.predictions}),
        )
    elif spec.is_baseline:
        state.fields["agreement"] = Agreement(
            baseline_key=spec.key,
            metrics=task.agreement(result.predictions, result.predictions),
            n_examples=len(result.predictions),
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.worker JOB.json", file=sys.stderr)
        return 2
    job = Job.model_validate(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    record = execute(job)
    if record.status == Status.ERROR and record.error is not None:
        print(record.error.traceback_tail, file=sys.stderr)
    save_record(record, Path(job.folder))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
