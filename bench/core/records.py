"""The run record: a versioned schema (see docs/records.md), atomic saving, loading and migration."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from bench.core.census import Census
from bench.core.compressor import Verification
from bench.core.device_memory import DeviceMemory
from bench.core.environment import Environment
from bench.core.errors import BenchError
from bench.core.latency import LatencyResult
from bench.core.metrics import MetricValue
from bench.core.model import ExecutedPrecision
from bench.core.serving import Interleaving, Serving
from bench.core.settings import Facts, Prediction
from bench.core.size import SavedSize
from bench.core.spec import RunSpec

SCHEMA_VERSION = 2
PREDICTIONS_SUFFIX = ".predictions.jsonl"
LOG_SUFFIX = ".log"


def now() -> str:
    """UTC time stamp, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Status(str, Enum):
    """How a run ended."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    OOM = "oom"
    """Killed by bench's memory watchdog: the worker's process tree passed `measurement.max_rss_gb`."""
    SKIPPED = "skipped"

    @property
    def failed(self) -> bool:
        """Whether the run failed (an error, a timeout or a memory kill), as opposed to ok or skipped."""
        return self in (Status.ERROR, Status.TIMEOUT, Status.OOM)


class ScoringThroughput(BaseModel):
    """How fast scoring pushed input tokens (padding included) through the model, against a bare loop that
    replays a sample of the same calls on the same model right after."""

    calls: int
    tokens: int
    seconds: float
    """The task's whole evaluation: model calls, batching, decoding and scoring."""
    model_seconds: float
    """Inside the model's calls."""
    tokens_per_s: float
    bare_tokens_per_s: float | None
    replayed_calls: int
    ratio: float | None
    """tokens_per_s / bare_tokens_per_s: 1 is the model's own speed; less is time the evaluation loop adds."""


class Accuracy(BaseModel):
    """Task metrics on the fixed evaluation examples."""

    metrics: dict[str, MetricValue]
    n_examples: int
    predictions_file: str | None = None
    """File beside the record holding one JSON row per example (id, prediction, references)."""
    primary_metric: str | None = None
    """The task's representative metric (reports plot it); None in records older than schema 2."""


class Agreement(BaseModel):
    """How closely this run's predictions match its group's baseline run."""

    baseline_key: str
    metrics: dict[str, MetricValue]
    n_examples: int


class Memory(BaseModel):
    """Resident memory of the run's process, in bytes, sampled every `interval_ms`."""

    interval_ms: float
    samples: int
    rss_at_start: int
    load_peak: int | None = None
    compress_peak: int | None = None
    steady_peak: int | None = None
    """Peak while timing and evaluating the compressed model (the larger of the two phases' peaks)."""
    evaluate_batch_size: int | None = None
    """Inputs per call while scoring accuracy: the batch of `phase_peaks["evaluate"]`."""
    process_max_rss: int
    phase_peaks: dict[str, int] = Field(default_factory=dict)
    """Sampled peak of every phase (load, compress, latency, evaluate)."""
    """ru_maxrss: the process's lifetime high-water mark, an upper bound on the sampled peaks."""
    cuda_max_allocated: int | None = None
    """The highest of the phases' allocator peaks (see `device` for each phase's)."""
    cuda_max_reserved: int | None = None
    device: DeviceMemory | None = None
    """CUDA runs: GPU memory phase by phase (allocator peaks reset at each phase, device memory in use)."""


class Size(BaseModel):
    """What the compressed model weighs."""

    saved: SavedSize | None = None
    census_before: Census | None = None
    census_after: Census | None = None


class ErrorInfo(BaseModel):
    """Why a run failed or was skipped."""

    type: str
    message: str
    traceback_tail: str = ""
    phase: str | None = None
    """The phase the run was in: setup, load, compress, save, prepare, latency, evaluate."""
    location: str | None = None
    """`file:line` of the innermost frame in the plugin's own code, when the error passed through it."""
    log: str | None = None
    """The run's log file (its output, capped: see docs/records.md)."""
    signal: str | None = None
    """The signal that ended the worker (SIGSEGV, SIGABRT, SIGKILL...), when one did."""
    exit_code: int | None = None
    """The worker's exit status, when it exited without a record."""
    peak_rss: int | None = None
    """Bytes: the launcher's sampled peak of the resident memory of the worker's processes, when the worker
    wrote no record (an `oom` run: the peak the watchdog saw)."""

    def describe(self) -> str:
        """One line: phase, exception type and message, where, and the log (records older than schema 2
        have the message only)."""
        if self.phase is None and self.log is None:
            return self.message
        text = f"{self.phase}: " if self.phase else ""
        plain = ("UnsupportedHere", "timeout", "error", "oom", "crash", "contract")
        text += self.message if self.type in plain else f"{self.type}: {self.message}"
        if self.location:
            text += f" (at {self.location})"
        if self.log:
            text += f" (log: {self.log})"
        return text


class Execution(BaseModel):
    """How the measured model ran, read back from it: its attention kernels and its compilation."""

    attention: str | None = None
    """The attention implementation the model runs (transformers' `_attn_implementation`; None: unknown)."""
    attention_requested: str | None = None
    """What the suite asked for (None: transformers' default)."""
    attention_pattern: str | None = None
    """Which query-key pairs attention computed while timed: "full", a sliding window, block sparse."""
    compiled: bool = False
    compile_mode: str | None = None
    compile_s: float | None = None
    """Seconds the first (compiling) call took, inside the compress phase."""
    graphs_compiled_while_timing: int | None = None
    """Graphs torch.compile built during timed calls (after warm-up): above 0, the timings include
    recompilation. None when the model is not compiled."""


class Placement(BaseModel):
    """Where a launcher other than `local` executed a run: the cluster node, and when the run held it."""

    launcher: str
    node_id: str
    node_address: str
    started_unix: float
    """The node's clock when the run's worker was started, in seconds since the epoch."""
    finished_unix: float
    """The node's clock when that worker had ended (for a run lost with its node: the driver's clock when
    the loss was seen)."""


class RungCheck(BaseModel):
    """The accuracy judged after one rung of a staged evaluation (see `RungPlan`)."""

    examples: int
    delta: float
    """The metric's change against the baseline on these examples."""
    low: float
    high: float
    """Its paired bootstrap 95% interval."""
    allowed_delta: float
    outside: bool
    """Whether the whole interval lies below `allowed_delta`: the budget cannot hold."""


class RungTrail(BaseModel):
    """How a staged evaluation went: the checks made, and where and why it stopped (None: it ran to the end)."""

    metric: str
    checks: list[RungCheck] = Field(default_factory=list)
    stopped: str | None = None
    """Why scoring stopped before the last example, e.g. "after 50 of 300 examples, the 95% interval of
    f1's change [-9.1, -3.2] lies wholly below the allowed -1.00"."""

    @property
    def stopped_at(self) -> int | None:
        """Examples scored when it stopped, or None."""
        return self.checks[-1].examples if self.stopped and self.checks else None

    def delta_at(self, examples: int) -> float | None:
        """The change measured after exactly `examples` examples, or None."""
        return next((c.delta for c in self.checks if c.examples == examples), None)


class Findings(BaseModel):
    """What a run found, part by part: its phases fill these in as they complete, so that a run that fails
    later keeps what was measured. A record is its findings plus how the run ended."""

    accuracy: Accuracy | None = None
    agreement: Agreement | None = None
    latency: dict[str, LatencyResult] = Field(default_factory=dict)
    """Latency results by what they time; 'forward' for encoder tasks."""
    scoring: ScoringThroughput | None = None
    """How close the accuracy run's scoring came to the model's own speed (None: records older than this
    field, or runs that ended before scoring)."""
    size: Size | None = None
    verification: Verification | None = None
    precision: ExecutedPrecision | None = None
    """What the compressed model's arithmetic executes in, read back from its runtime (None: not readable)."""
    compression: Facts = Field(default_factory=dict)
    """What the compressors reported doing: calibration example ids, training time and loss, cache use."""
    notes: list[str] = Field(default_factory=list)
    """Flags for readers: hardware caveats, fallbacks, what was not measured and why."""
    environment: Environment | None = None
    weights: str = "pretrained"
    """'pretrained' or 'random' (accuracy of random weights is not meaningful)."""
    model_info: Facts = Field(default_factory=dict)
    """How a random-weight model was built (architecture, seed, parameters, tokenizer vocabulary, corpus)."""
    execution: Execution | None = None
    """Attention kernels and compilation of the measured model (None: records older than these fields, or
    runs that ended before compression)."""
    rungs: RungTrail | None = None
    """A staged evaluation's checks (None: the run scored every example at once)."""
    serving: Serving | None = None
    """Where latency, scoring and memory were measured: the saved model in a fresh process with its runtime
    alone, or the compressing process (and why). None: records older than the serve phase."""
    interleaving: Interleaving | None = None
    """A served row timed again in interleaved rounds with its group's other served rows (None: timed once,
    in its own window)."""


class RunRecord(Findings):
    """Everything measured in one run. Written once per run, as JSON."""

    schema_version: int = SCHEMA_VERSION
    status: Status
    spec: RunSpec
    machine: str
    bench_version: str
    started_at: str
    finished_at: str
    wall_s: float
    phases_s: dict[str, float] = Field(default_factory=dict)
    """Seconds per phase: setup, load, compress, save, prepare, latency, evaluate."""
    memory: Memory | None = None
    error: ErrorInfo | None = None
    placement: Placement | None = None
    """The cluster node that measured the run (None: the machine that ran `bench run`)."""


class RecordError(BenchError):
    """A record that cannot be read."""


def _source(location: object) -> object:
    if not isinstance(location, str):
        return location
    if location.startswith("architecture:"):
        return {"location": location.removeprefix("architecture:"), "local": True, "architecture": True}
    return {"location": location, "local": Path(location).is_absolute(), "architecture": False}


RawRecord = dict[str, object]
"""A record's JSON as read, before validation."""


def _v1_to_v2(data: RawRecord) -> RawRecord:
    """Schema 2: typed sources, one shape object, `task.config` (was `task.options`)."""
    spec = data.get("spec")
    if isinstance(spec, dict):
        for key in ("model_source", "dataset_source", "calibration_source"):
            if spec.get(key) is not None:
                spec[key] = _source(spec[key])
        if "batch_size" in spec:
            spec["shape"] = {"batch_size": spec.pop("batch_size"), "sequence_length": spec.pop("sequence_length")}
        task = spec.get("task")
        if isinstance(task, dict) and "options" in task:
            task["config"] = task.pop("options")
    latency = data.get("latency")
    for result in latency.values() if isinstance(latency, dict) else ():
        if isinstance(result, dict) and "batch_size" in result:
            result["shape"] = {"batch_size": result.pop("batch_size"), "sequence_length": result.pop("sequence_length")}
    return data


# Migrations from version N to N+1, applied in order when an older record is loaded.
MIGRATIONS: dict[int, Callable[[RawRecord], RawRecord]] = {1: _v1_to_v2}


def migrate(data: RawRecord, path: Path | str = "record") -> RawRecord:
    """Bring a raw record up to SCHEMA_VERSION."""
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise RecordError(f"{path}: not a bench record (no integer schema_version)")
    if version > SCHEMA_VERSION:
        raise RecordError(
            f"{path}: schema_version {version} is newer than this bench ({SCHEMA_VERSION}); upgrade bench"
        )
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
        data["schema_version"] = version
    return data


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one, never a part. The file
    gets the mode a plain `open` would give it (0666 less the umask), not the temporary file's 0600, so that
    a shared results folder stays readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_path(folder: Path, key: str) -> Path:
    """The record file of run `key` in `folder`."""
    return folder / f"{key}.json"


SUPERSEDED_DIR = ".superseded"


def supersede(folder: Path, key: str, stamp: str) -> Path | None:
    """Move a stored record (and its predictions) aside before it is re-measured, so that a forced
    re-run that fails loses nothing. Returns where the record went, or None if there was none."""
    path = record_path(folder, key)
    if not path.exists():
        return None
    target = folder / SUPERSEDED_DIR / stamp
    target.mkdir(parents=True, exist_ok=True)
    for source in (path, folder / f"{key}{PREDICTIONS_SUFFIX}"):
        if source.exists():
            os.replace(source, target / source.name)
    return target / path.name


def save_record(record: RunRecord, folder: Path) -> Path:
    """Write the record atomically as <folder>/<key>.json."""
    path = record_path(folder, record.spec.key)
    atomic_write_text(path, record.model_dump_json(indent=2) + "\n")
    return path


def load_record(path: Path) -> RunRecord:
    """Read, migrate and validate one record."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RecordError(f"{path}: unreadable record: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: not a bench record")
    try:
        return RunRecord.model_validate(migrate(data, path))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RecordError(f"{path}: invalid record at {where}: {first['msg']}") from None


def stored_record(path: Path) -> RunRecord | None:
    """The record at `path`, or None when there is none or it cannot be read."""
    if not path.is_file():
        return None
    try:
        return load_record(path)
    except RecordError:
        return None


def iter_record_files(root: Path) -> Iterator[Path]:
    """Record files under `root` (a folder searched recursively, or one file)."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*.json")):
        # hidden files and folders (.work, .logs, .superseded) hold no current records
        if not any(part.startswith(".") for part in path.relative_to(root).parts):
            yield path


def write_predictions(path: Path, rows: Sequence[Prediction]) -> None:
    """Per-example predictions as JSON lines, written atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows))


def read_predictions(path: Path) -> list[Prediction]:
    """Rows written by write_predictions; ValueError when a line is not a JSON object."""
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    if not all(isinstance(row, dict) for row in rows):
        raise ValueError("a line is not a JSON object")
    return rows


@dataclass
class LoadedRecords:
    """Records found under the given paths (in a stable order), their files, and what could not be read."""

    records: list[RunRecord]
    unreadable: list[str] = field(default_factory=list)
    """One line per file that was skipped: the file and why."""
    files: dict[int, Path] = field(default_factory=dict)
    """id(record) -> the record's file, to find its predictions beside it."""

    def predictions(self, record: RunRecord) -> list[Prediction] | None:
        """The record's per-example predictions, or None when they are missing or unreadable (then listed in
        `unreadable`). Only a file in the record's own folder is read, whatever the record names."""
        path = self.files.get(id(record))
        if path is None or record.accuracy is None or not record.accuracy.predictions_file:
            return None
        name = record.accuracy.predictions_file
        file = path.parent / name
        if Path(name).name != name or name in (".", ".."):
            self.unreadable.append(f"{path}: predictions_file {name[:80]!r} is not a file beside the record: ignored")
            return None
        if not file.is_file():
            return None
        try:
            return read_predictions(file)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            self.unreadable.append(f"{file}: unreadable predictions: {type(exc).__name__}: {str(exc)[:200]}")
            return None


def load_records(paths: Iterable[Path]) -> LoadedRecords:
    """Every record under `paths`; unreadable files are listed, not fatal."""
    loaded = LoadedRecords([])
    for root in paths:
        for path in sorted(iter_record_files(root)):
            try:
                record = load_record(path)
            except RecordError as exc:
                loaded.unreadable.append(str(exc))
                continue
            loaded.records.append(record)
            loaded.files[id(record)] = path
    return loaded
