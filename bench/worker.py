"""The child process of one run: a RunSpec in, a RunRecord (and its predictions) out.

Started as `python -m bench.worker JOB.json` by a launcher. Whatever happens inside (an exception, a
compressor that proves it did nothing, an unsupported device), a record is written; only a hard crash
or a timeout leaves none, and the launcher then writes it. The flow is `_execute`: one function per phase,
each returning its typed part of the record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import functools
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic

from bench import __version__
from bench.chain import Step, apply_chain
from bench.core import attention, devices
from bench.core.census import Census, take_census
from bench.core.compilation import RecompileWatch, recompile_note
from bench.core.compressor import CalibrationData, CompressContext, Verification
from bench.core.device_memory import DeviceMemoryTracker, TorchCudaMemory
from bench.core.devices import Device
from bench.core.environment import capture, cpu_flags, machine_name
from bench.core.errors import CompressionNotApplied, DataNotFoundError, UnsupportedHere
from bench.core.job import PARENT_VARIABLE, Job, Progress, write_progress
from bench.core.latency import LatencyResult
from bench.core.model import FORWARD_SCOPE, Batch, ExecutedPrecision, ModelHandle, Tokenizer
from bench.core.records import (
    PREDICTIONS_SUFFIX,
    Accuracy,
    Agreement,
    ErrorInfo,
    Execution,
    Findings,
    Memory,
    RunRecord,
    Size,
    Status,
    now,
    read_predictions,
    save_record,
    write_predictions,
)
from bench.core.registry import COMPRESSORS, TASKS
from bench.core.serving import Serving
from bench.core.settings import Example, Prediction
from bench.core.size import measure_saved
from bench.core.sources import Source
from bench.core.spec import RunSpec
from bench.core.suite import RungPlan
from bench.core.task import EvalOutput, F, Task
from bench.failure import error_info, plugin_files
from bench.measure.contention import BUSY_THRESHOLD, CpuContention
from bench.measure.memory import RssSampler, max_rss_bytes, release_freed_memory
from bench.measure.scoring import ScoringMeter
from bench.measure.staged import can_stage, score_in_stages
from bench.orphan import die_with_parent
from bench.serve.client import ServedModel, ServeProcess
from bench.serve.handoff import leave

LATENCY_INPUT_POOL = 32


@dataclass
class EvalData(Generic[F]):
    """The evaluation examples and their features, encoded once per run (the timed inputs and a compressor's
    example batch are drawn from the same features)."""

    examples: list[Example]
    features: F


class Run:
    """One run in progress: its job, plugins, phase timings and record parts."""

    def __init__(self, job: Job) -> None:
        spec = job.spec
        self.job = job
        self.spec = spec
        self.folder = Path(job.folder)
        self.workdir = self.folder / ".work" / spec.key
        self.started_at = now()
        self.t0 = time.perf_counter()
        self.phases: dict[str, float] = {}
        self.phase_now: str | None = None
        self.parts = Findings(weights="random" if spec.model.architecture else "pretrained")
        self.sampler = RssSampler(spec.measurement.memory_interval_ms / 1000)
        self.flags = cpu_flags()
        self.task: Task | None = None
        self.steps: list[Step] = []
        self.eval_batch: int | None = None
        self.gpu: DeviceMemoryTracker | None = None
        """CUDA runs: per-phase GPU memory, from setup on."""

    @contextmanager
    def phase(self, name: str, sample: bool = True) -> Iterator[None]:
        """Time a phase (and attribute its memory samples to it)."""
        start = time.perf_counter()
        self.phase_now = name
        self.report_progress()
        try:
            with (
                self.sampler.phase(name) if sample else contextlib.nullcontext(),
                self.gpu.phase(name) if sample and self.gpu is not None else contextlib.nullcontext(),
            ):
                yield
        finally:
            self.phases[name] = time.perf_counter() - start

    def report_progress(self) -> None:
        """Tell the launcher how far the run got, in case it dies without a record."""
        progress = Progress(
            started_at=self.started_at, phase=self.phase_now, phases_s=self.phases, environment=self.parts.environment
        )
        with contextlib.suppress(OSError):
            write_progress(self.workdir, progress)

    def record(self, status: Status, error: ErrorInfo | None, memory: Memory | None) -> RunRecord:
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
            memory=memory,
            **dict(self.parts),
        )


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


def cache_dir() -> Path:
    """Persistent artefacts (trained students): $BENCH_CACHE_DIR, or ~/.cache/bench."""
    return Path(os.environ.get("BENCH_CACHE_DIR") or Path.home() / ".cache" / "bench")


def _memory(
    sampler: RssSampler,
    rss_start: int,
    gpu: DeviceMemoryTracker | None,
    eval_batch: int | None,
    serving: Serving | None = None,
) -> Memory:
    """The compressing process's memory; a served run's steady peak (and on CUDA, its device memory while
    timed and scored) is the serving process's."""
    device = gpu.record if gpu is not None and gpu.record.phases else None
    if device is not None and serving is not None and serving.device_memory is not None:
        device = device.model_copy(update={"phases": {**device.phases, **serving.device_memory.phases}})
    cuda_alloc = max(p.allocated_peak for p in device.phases.values()) if device else None
    cuda_reserved = max(p.reserved_peak for p in device.phases.values()) if device else None
    steady = [sampler.peaks[p] for p in ("latency", "evaluate") if p in sampler.peaks]
    scored = "evaluate" in sampler.peaks
    if serving is not None and serving.where == "fresh process":
        steady = serving.steady_peaks()
        scored = serving.scoring_peak is not None
    return Memory(
        interval_ms=sampler.interval_s * 1000,
        samples=sampler.samples,
        rss_at_start=rss_start,
        load_peak=sampler.peaks.get("load"),
        compress_peak=sampler.peaks.get("compress"),
        steady_peak=max(steady) if steady else None,
        evaluate_batch_size=eval_batch if scored else None,
        process_max_rss=max_rss_bytes(),
        phase_peaks=dict(sampler.peaks),
        cuda_max_allocated=cuda_alloc,
        cuda_max_reserved=cuda_reserved,
        device=device,
    )


def execute(job: Job) -> RunRecord:
    """Run every phase of one spec and return its record (status ok, skipped or error)."""
    run = Run(job)
    rss_start = run.sampler.start().current()
    status, error = Status.OK, None
    try:
        _execute(run)
    except UnsupportedHere as exc:
        status, error = Status.SKIPPED, ErrorInfo(type="UnsupportedHere", message=str(exc), phase=run.phase_now)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # also Rust panics surfacing from tokenizers (pyo3 PanicException)
        status = Status.ERROR
        plugins = plugin_files([run.task, *(step.compressor for step in run.steps)])
        error = error_info(exc, run.phase_now, plugins, job.log_path)
    run.sampler.stop()
    return run.record(status, error, _memory(run.sampler, rss_start, run.gpu, run.eval_batch, run.parts.serving))


def _execute(run: Run) -> None:
    """The flow of one run (see docs/records.md for its phases)."""
    with run.phase("setup", sample=False):
        task = setup(run)
    with run.phase("load"):
        model, source = load(run, task)
    data = encoded(task, run.spec, model.tokenizer)
    census = take_census(model.tensors())
    with run.phase("compress"):
        model, run.parts.verification = compress(run, task, model, source, census, data)
    run.parts.execution = execution(run, model)
    with run.phase("save", sample=False):
        run.parts.size = save(run, model, census)
        run.parts.precision = check_precision(run, model)
    with serving(run, task, model) as measured:
        here = not isinstance(measured, ServedModel)  # else the serving process samples its own memory
        with run.phase("prepare", sample=False):
            pool = timing_pool(task, data(), run.spec, measured)
        with run.phase("latency", sample=here):
            run.parts.latency = time_latency(run, task, measured, pool)
        if run.spec.retiming:
            run.parts.notes.append(
                f"repeated timing {run.spec.retiming}: latency only, in a fresh process; the accuracy is the "
                "ordinary run's"
            )
            return
        with run.phase("evaluate", sample=here):
            run.parts.accuracy, predictions = evaluate(run, task, measured, data())
    run.parts.agreement = agree(run, task, predictions)


@contextmanager
def serving(run: Run, task: Task, model: ModelHandle) -> Iterator[ModelHandle]:
    """The model the run times and scores: the saved files served by their runtime alone in a fresh process
    where the handle says how, else `model` itself (`run.parts.serving` says which, and why)."""
    recipe = model.serve_recipe()
    if isinstance(recipe, str) or type(task).latency is not Task.latency:
        reason = recipe if isinstance(recipe, str) else f"task {task.name} times more than the forward pass"
        run.parts.serving = Serving(where="compressing process", reason=reason)
        run.parts.notes.append(f"timed and scored in the compressing process, not from its saved files: {reason}")
        yield model
        return
    run.parts.serving = Serving(where="fresh process", runtime=recipe.runtime)  # a failure later still says so
    with run.phase("serve", sample=False):
        server = ServeProcess(recipe, run.workdir / "saved", log=None)
    try:
        yield ServedModel(model, server)
        run.parts.serving = server.finish()
    finally:
        server.close()


def setup(run: Run) -> Task:
    """Load the plugins, refuse what cannot run here, pin threads and seeds, record the environment."""
    spec = run.spec
    run.steps = [Step(s.name, COMPRESSORS.load(s.name).from_mapping(s.config)) for s in spec.compressor.steps]
    run.task = TASKS.load(spec.task.name).from_mapping(spec.task.config)
    run.parts.environment = capture(threads=spec.threads, seed=spec.seed, gpus=True)  # skipped runs keep it too
    cuda = spec.device.is_cuda
    reasons = [devices.cuda_unavailable_reason(spec.device) if cuda else None]
    reasons += [step.compressor.unsupported_reason(spec.device, run.flags) for step in run.steps]
    reasons.append(attention.unsupported_here(spec.attention, spec.device))
    reason = next((r for r in reasons if r is not None), None)
    if reason is not None:
        raise UnsupportedHere(reason)
    if cuda:
        memory = TorchCudaMemory(spec.device)
        run.gpu = DeviceMemoryTracker(memory, spec.device, memory.source)
    set_threads_and_seed(spec.threads, spec.seed)
    run.report_progress()
    return run.task


def load(run: Run, task: Task) -> tuple[ModelHandle, Source]:
    """The uncompressed model, built first when the suite names a random-weight architecture."""
    spec = run.spec
    source = spec.model_source
    if source.architecture:
        source = build_random_model(run)
    reason = attention.unsupported_by_model(spec.attention, source.location, spec.model.revision)
    if reason is not None:
        raise UnsupportedHere(reason)
    model = task.load_model(source, spec.device, spec.model.revision, **attention.load_arguments(spec.attention))
    return model, source


def build_random_model(run: Run) -> Source:
    """Build (or find cached) the suite's random-weight architecture, and say so in the record."""
    from bench.random_models import materialize

    spec = run.spec
    assert spec.model.architecture is not None
    folder, facts = materialize(
        spec.model.architecture, spec.tokenizer_corpus, spec.seed, cache_dir(), spec.model.overrides
    )
    run.parts.model_info = facts
    run.parts.notes.append(
        f"random weights ({spec.model.architecture} shapes, tokenizer trained here): "
        "accuracy is not meaningful; latency, memory, size and agreement are"
    )
    if facts["tokenizer_vocab"] < facts["vocab_size"]:
        run.parts.notes.append(
            f"the tokenizer corpus gave {facts['tokenizer_vocab']:,} of {facts['vocab_size']:,} tokens; "
            "the embedding keeps the real number of rows"
        )
    return Source(str(folder), local=True)


def evaluation_examples(task: Task, spec: RunSpec) -> list[Example]:
    """The run's evaluated examples: `limit` of them after the first `offset` of the split."""
    skip = spec.task.offset
    limit = None if spec.task.limit is None else skip + spec.task.limit
    examples = task.load_examples(spec.dataset_source, spec.task.split, limit)[skip:]
    if not examples:
        raise DataNotFoundError(f"split '{spec.task.split}' has no examples after the first {skip}")
    return examples


def encoded(task: Task[F], spec: RunSpec, tokenizer: Tokenizer) -> Callable[[], EvalData[F]]:
    """The run's evaluation examples and features, loaded and encoded on first use and kept."""

    def load() -> EvalData[F]:
        examples = evaluation_examples(task, spec)
        return EvalData(examples, task.encode(tokenizer, examples, spec.sequence_length))

    return functools.cache(load)


def build_context(
    spec: RunSpec,
    task: Task[F],
    data: Callable[[], EvalData[F]],
    workdir: Path,
    flags: frozenset[str],
    model_source: Source,
    tokenizer: Tokenizer,
) -> CompressContext:
    """The CompressContext of a run: its data access is lazy, so compressors that need none cost nothing."""
    calibration = spec.calibration_source

    def training_examples(n: int | None) -> list[Example]:
        if calibration is None:
            raise UnsupportedHere(f"no training split '{spec.task.calibration_split}' for this dataset")
        return task.load_examples(calibration, spec.task.calibration_split, n)

    def calibration_data(n: int) -> CalibrationData:
        rows = training_examples(n)
        batches = task.batches(task.encode(tokenizer, rows, spec.sequence_length), spec.batch_size)
        return CalibrationData(batches=batches, example_ids=[str(r["id"]) for r in rows])

    def example_batch() -> Batch:
        return task.batches(data().features, spec.batch_size)[0]

    def reload(**kwargs: object) -> ModelHandle:
        arguments = {**attention.load_arguments(spec.attention), **kwargs}
        return task.load_model(model_source, spec.device, spec.model.revision, **arguments)

    return CompressContext(
        device=spec.device,
        seed=spec.seed,
        workdir=workdir,
        threads=spec.threads,
        cpu_flags=flags,
        task=task,
        shape=spec.shape,
        model_source=model_source,
        calibration_split=spec.task.calibration_split,
        reload=reload,
        example_batch=example_batch,
        calibration_data=calibration_data,
        training_examples=training_examples,
        cache_dir=cache_dir(),
        training_source=calibration,
        model_revision=spec.model.revision,
    )


def compress(
    run: Run, task: Task[F], model: ModelHandle, source: Source, census: Census, data: Callable[[], EvalData[F]]
) -> tuple[ModelHandle, Verification]:
    """Apply the run's compressors; a failed proof fails the run."""
    ctx = build_context(run.spec, task, data, run.workdir, run.flags, source, model.tokenizer)
    ctx.notes = run.parts.notes
    ctx.facts = run.parts.compression
    compressed, verification = apply_chain(model, run.steps, ctx, census)
    del model
    release_freed_memory()
    if not verification.passed:
        run.parts.verification = verification
        raise CompressionNotApplied(f"{run.spec.compressor.display_name}: verification failed: {verification.summary}")
    return compressed, verification


def precision_problem(claimed: str | None, executed: ExecutedPrecision | None) -> str | None:
    """Why the executed precision contradicts the claim, or None (also when either is unknown)."""
    return None if executed is None else executed.contradiction(claimed)


def check_precision(run: Run, model: ModelHandle) -> ExecutedPrecision | None:
    """Read back what the runtime executes; a contradiction of the row's claim fails the run."""
    executed = model.executed_precision()
    claims = [step.compressor.precision for step in run.steps if step.compressor.precision is not None]
    problem = precision_problem(claims[-1] if claims else None, executed)
    if problem is not None:
        run.parts.precision = executed
        raise CompressionNotApplied(f"{run.spec.compressor.display_name}: {problem}")
    return executed


def execution(run: Run, model: ModelHandle) -> Execution:
    """The attention kernels and compilation of the model about to be measured, read back from it."""
    compiled = model.compilation
    return Execution(
        attention=model.attention_implementation(),
        attention_requested=run.spec.attention,
        compiled=compiled is not None,
        compile_mode=compiled.mode if compiled else None,
        compile_s=compiled.seconds if compiled else None,
        graphs_compiled_while_timing=0 if compiled else None,
    )


def save(run: Run, model: ModelHandle, census_before: Census) -> Size:
    """Save the model as a user would ship it, and weigh it."""
    saved_dir = run.workdir / "saved"
    files = model.save(saved_dir)
    return Size(
        saved=measure_saved(files, saved_dir, model.save_format),
        census_before=census_before,
        census_after=take_census(model.tensors()),
    )


def timing_pool(task: Task[F], data: EvalData[F], spec: RunSpec, model: ModelHandle) -> list[Batch]:
    """Real inputs at the run's shape for timing: the first full batches of the evaluation features (at most
    LATENCY_INPUT_POOL; the first batch alone when none is full), placed on the model's device."""
    pool = task.batches(data.features, spec.batch_size, full_only=True)[:LATENCY_INPUT_POOL]
    pool = pool or task.batches(data.features, spec.batch_size)[:1]
    return [model.stage(batch) for batch in pool]


FILLED_SHARE = 0.95
"""Inputs filled from real text should hold at least this share of the sequence length in real tokens."""


def time_latency(run: Run, task: Task, model: ModelHandle, pool: Sequence[Batch]) -> dict[str, LatencyResult]:
    """Steady-state latency on real inputs, flagged when other processes competed for the CPU."""
    contention = CpuContention.start()
    settings = run.spec.measurement.latency_settings()
    served = isinstance(model, ServedModel)  # a serving process counts the graphs it compiles while timed
    watch = RecompileWatch() if model.compilation is not None and not served else None
    if watch is not None:
        settings = dataclasses.replace(settings, timed_region=watch.region)
    if isinstance(model, ServedModel):
        scope = f"{FORWARD_SCOPE}; the saved model served by {model.runtime} alone in a fresh process"
        arrays = model.timing_inputs(pool)
        if run.job.rounds_follow:  # one slice here; the launcher's interleaved rounds give the figures
            settings = run.spec.measurement.slice_settings(first=True)
            leave(run.workdir, model.server.recipe, arrays, scope)
        timings = {"forward": model.server.time(arrays, settings, run.spec.shape, scope)}
    else:
        timings = task.latency(model, pool, settings, run.spec.shape)
    # a serving process measures the contention of its own timing (the worker's share is its CPU)
    shares = [r.other_cpu_share for r in timings.values() if r.other_cpu_share is not None]
    busy = round(max(shares) if shares else contention.share(), 4)
    real = real_tokens_per_input(pool)
    length = run.spec.sequence_length
    if real is not None and task.fills_inputs() and real < FILLED_SHARE * length:
        run.parts.notes.append(
            f"timed inputs hold {real:.0f} real tokens on average, {100 * real / length:.0f}% of the sequence "
            f"length {length}: the split has too little text to fill them, so these timings are of padding"
        )
    if run.parts.execution is not None:  # read after the timed calls: a model may change kernels on its first call
        ran: dict[str, object] = {"attention_pattern": model.attention_pattern()}
        built = watch.built if watch is not None else recompiled(timings)
        if built is not None:
            ran["graphs_compiled_while_timing"] = built
        run.parts.execution = run.parts.execution.model_copy(update=ran)
        if built:
            run.parts.notes.append(recompile_note(built))
    if busy > BUSY_THRESHOLD:
        run.parts.notes.append(
            f"other processes used {100 * busy:.0f}% of the CPU while latency was timed: these timings are unreliable"
        )
    facts = {"other_cpu_share": busy, "real_tokens_per_input": real}
    if run.spec.device.is_cuda:
        run.parts.notes.extend(device_timing_gaps(timings))
    return {
        name: r.model_copy(update={**facts, "scope": scoped(r.scope, run.spec.device, model)})
        for name, r in timings.items()
    }


def recompiled(timings: Mapping[str, LatencyResult]) -> int | None:
    """Graphs a serving process's torch.compile built during its timed calls (None: not compiled there)."""
    counts = [r.graphs_compiled for r in timings.values() if r.graphs_compiled is not None]
    return sum(counts) if counts else None


DEVICE_TIMING_GAP = 0.05
"""Synchronized wall-clock and CUDA-event medians further apart than this get a note."""


def scoped(scope: str, device: Device, model: ModelHandle) -> str:
    """The scope of a timing, saying where its inputs were (CUDA runs)."""
    if not device.is_cuda:
        return scope
    if model.stages_inputs or isinstance(model, ServedModel):  # a serving process stages them before timing
        return f"{scope}; inputs resident on {device} before timing"
    return f"{scope}; includes copying the inputs from host memory to {device}"


def device_timing_gaps(timings: dict[str, LatencyResult]) -> list[str]:
    """Notes for timings whose wall-clock median and CUDA-event median disagree by more than 5%."""
    notes = []
    for name, result in timings.items():
        wall, device = result.stats.p50, result.device_p50_ms
        if device is None or wall <= 0:
            continue
        gap = (wall - device) / wall
        if abs(gap) > DEVICE_TIMING_GAP:
            notes.append(
                f"{name}: the synchronized wall clock (p50 {wall:.3f} ms) and CUDA events (p50 {device:.3f} ms) "
                f"differ by {100 * gap:.0f}%: host-side launch overhead (or idle device time) is that share"
            )
    return notes


def real_tokens_per_input(pool: Sequence[Batch]) -> float | None:
    """Mean non-padding tokens per sequence over the timed inputs (None without an attention mask)."""
    masks = [batch["attention_mask"] for batch in pool if "attention_mask" in batch]
    if not masks:
        return None
    rows = [float(row.sum()) for mask in masks for row in mask]
    return round(sum(rows) / len(rows), 1)


def evaluate(run: Run, task: Task[F], model: ModelHandle, data: EvalData[F]) -> tuple[Accuracy, list[Prediction]]:
    """Task accuracy on the evaluation examples; the predictions are written beside the record."""
    batch = run.eval_batch = task.evaluation_batch_size(run.spec.shape, model)
    staging = stages(run, task)
    meter = ScoringMeter(model)
    start = time.perf_counter()
    with meter.recording():
        if staging is None:
            result = task.evaluate(model, data.examples, data.features, batch)
            metrics, rows = result.metrics, result.predictions
        else:
            plan, baseline = staging

            def score_chunk(chunk: Sequence[Example]) -> EvalOutput:
                return task.evaluate(model, chunk, task.encode(model.tokenizer, chunk, run.spec.sequence_length), batch)

            metrics, rows, run.parts.rungs = score_in_stages(task, data.examples, score_chunk, plan, baseline)
            if run.parts.rungs.stopped:
                run.parts.notes.append(f"scoring stopped early, {run.parts.rungs.stopped}: the accuracy is of those")
    scoring = meter.result(time.perf_counter() - start)
    path = run.folder / f"{run.spec.key}{PREDICTIONS_SUFFIX}"
    write_predictions(path, rows)
    primary = task.primary_metric if task.primary_metric in metrics else None
    run.parts.scoring = scoring
    accuracy = Accuracy(metrics=metrics, n_examples=len(rows), predictions_file=path.name, primary_metric=primary)
    return accuracy, rows


def stages(run: Run, task: Task) -> tuple[RungPlan, list[Prediction]] | None:
    """The rungs to score in and the baseline predictions to judge them against, or None (every example at
    once: no rungs asked for, the baseline itself, or a task or run that cannot judge them; noted)."""
    plan = run.spec.task.rungs
    if plan is None or run.spec.is_baseline:
        return None
    if not can_stage(task):
        run.parts.notes.append(f"rungs ignored: task {task.name} cannot score prediction rows on their own")
        return None
    baseline_file = run.job.baseline_predictions
    if not baseline_file or not Path(baseline_file).is_file():
        run.parts.notes.append("rungs ignored: no baseline predictions to judge them against")
        return None
    return plan, read_predictions(Path(baseline_file))


def agree(run: Run, task: Task, predictions: list[Prediction]) -> Agreement | None:
    """Agreement with the group's baseline predictions (the baseline agrees with itself)."""
    baseline_file = run.job.baseline_predictions
    if baseline_file and Path(baseline_file).is_file():
        baseline = read_predictions(Path(baseline_file))
        return Agreement(
            baseline_key=Path(baseline_file).name.removesuffix(PREDICTIONS_SUFFIX),
            metrics=task.agreement(predictions, baseline),
            n_examples=len({r["id"] for r in baseline} & {r["id"] for r in predictions}),
        )
    if run.spec.is_baseline:
        return Agreement(
            baseline_key=run.spec.key, metrics=task.agreement(predictions, predictions), n_examples=len(predictions)
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.worker JOB.json", file=sys.stderr)
        return 2
    parent = os.environ.get(PARENT_VARIABLE)
    die_with_parent(int(parent) if parent and parent.isdigit() else None)
    # a crash (SIGSEGV, SIGABRT...) or the launcher's SIGTERM leaves every thread's Python stack in the log
    faulthandler.enable(all_threads=True)
    faulthandler.register(signal.SIGTERM, all_threads=True, chain=True)
    job = Job.model_validate(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    record = execute(job)
    if record.status == Status.ERROR and record.error is not None:
        print(record.error.traceback_tail, file=sys.stderr)
    save_record(record, Path(job.folder))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
