"""One run in a fresh worker process, watched from outside, with a record whatever happens to it: the worker
writes its own; for a worker that crashes, hangs, outgrows its memory or breaks the worker's contract, one is
written here from how it ended and what its progress file says it reached."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil

from bench import __version__
from bench.core.environment import capture, machine_name
from bench.core.job import Job, read_progress
from bench.core.job import Progress as WorkerProgress
from bench.core.records import (
    PREDICTIONS_SUFFIX,
    ErrorInfo,
    RunRecord,
    Status,
    record_path,
    save_record,
    stored_record,
    supersede,
)
from bench.core.registry import COMPRESSORS, TASKS, PluginError
from bench.core.spec import RunSpec
from bench.failure import dumped_stack, registered_files
from bench.interrupts import shielded
from bench.launchers.watchdog import LaunchResult, Limits, launch, log_tail
from bench.serve.handoff import HANDOFF_FOLDER

KEEP_WORK_VARIABLE = "BENCH_KEEP_WORK"
"""Set (to anything) to keep each run's work folder, `.work/<run key>/` with the saved model in `saved/`."""
DEFAULT_RAM_SHARE = 0.8
"""The memory watchdog's default limit, as a share of the machine's RAM."""


def _signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _failure(spec: RunSpec, result: LaunchResult, limit: int | None, phase: str | None) -> tuple[Status, ErrorInfo]:
    """Status and error of a worker that ended without a record, from how it ended."""
    where = f" in phase {phase}" if phase else ""
    sig = _signal_name(result.returncode)
    code = result.returncode if sig is None else None
    if result.memory_killed:
        status, kind = Status.OOM, "oom"
        message = (
            f"stopped by the memory watchdog{where}: its processes reached {result.peak_rss / 1e9:.2f} GB, "
            f"past the limit of {(limit or 0) / 1e9:.2f} GB (measurement.max_rss_gb)"
        )
    elif result.timed_out:
        status, kind = Status.TIMEOUT, "timeout"
        message = f"timed out after {spec.measurement.timeout_s:g} s{where}"
    elif result.returncode == 0:
        status, kind = Status.ERROR, "contract"
        message = (
            f"the worker exited with status 0{where} without writing a record, which breaks the worker's "
            "contract: something in the run ended the process early (os._exit or sys.exit in a plugin?)"
        )
    else:
        status, kind = Status.ERROR, "crash"
        how = f"killed by {sig}" if sig else f"exited with status {result.returncode}"
        detail = f" ({signal.strsignal(-result.returncode)})" if sig and result.returncode is not None else ""
        message = f"the worker was {how}{detail}{where} without writing a record; its log holds the Python stack"
    error = ErrorInfo(type=kind, message=message, phase=phase, signal=sig, exit_code=code, peak_rss=result.peak_rss)
    return status, error


def _plugin_targets(spec: RunSpec) -> list[str]:
    targets = []
    with contextlib.suppress(PluginError):
        targets.append(TASKS.entry(spec.task.name).target)
    for step in spec.compressor.steps:
        with contextlib.suppress(PluginError):
            targets.append(COMPRESSORS.entry(step.name).target)
    return targets


def _failure_record(
    spec: RunSpec, result: LaunchResult, limit: int | None, progress: WorkerProgress | None, log: Path
) -> RunRecord:
    """The record of a worker that wrote none: how it ended, and what its progress file says it reached."""
    phase = progress.phase if progress else None
    status, error = _failure(spec, result, limit, phase)
    tail = log_tail(log, 64_000)
    stack = dumped_stack(tail, registered_files(_plugin_targets(spec)))
    if stack is not None:
        error.traceback_tail = f"{stack[0]}\n\n[end of the log]\n{tail[-1500:]}"
        error.location = stack[1]
    else:
        error.traceback_tail = tail[-4000:]
    error.log = str(log)
    finished = datetime.now(timezone.utc)
    launched = (finished - timedelta(seconds=result.wall_s)).isoformat(timespec="seconds")
    started = progress.started_at if progress else launched
    notes = [f"the log dropped {result.log_dropped_bytes:,} bytes of output (kept: its head and tail)"]
    return RunRecord(
        status=status,
        spec=spec,
        machine=machine_name(),
        bench_version=__version__,
        started_at=started,
        finished_at=finished.isoformat(timespec="seconds"),
        wall_s=result.wall_s,
        phases_s=progress.phases_s if progress else {},
        environment=(progress.environment if progress else None) or capture(threads=spec.threads, seed=spec.seed),
        notes=notes if result.log_dropped_bytes else [],
        error=error,
    )


def memory_limit(spec: RunSpec) -> int:
    """The watchdog's limit in bytes: the suite's `max_rss_gb`, or a share of this machine's RAM."""
    if spec.measurement.max_rss_gb is not None:
        return int(spec.measurement.max_rss_gb * 1e9)
    return int(DEFAULT_RAM_SHARE * psutil.virtual_memory().total)


class PhaseWatch:
    """Tells a listener when a worker enters a new phase, from the progress file in its work folder."""

    def __init__(self, workdir: Path, listener: Callable[[str], None]) -> None:
        self.workdir, self.listener = workdir, listener
        self.phase: str | None = None

    def tick(self) -> None:
        progress = read_progress(self.workdir)
        if progress is not None and progress.phase is not None and progress.phase != self.phase:
            self.phase = progress.phase
            self.listener(progress.phase)


def run_one(
    spec: RunSpec,
    folder: Path,
    baseline_key: str | None,
    on_phase: Callable[[str], None] | None = None,
    rounds_follow: bool = False,
) -> RunRecord:
    """Launch one run in a fresh process; store a record whatever happens to it, except a stop signal to
    `bench run` itself: then nothing is stored, so that the same command runs it again. `on_phase` hears each
    phase the worker enters (read from its progress file, about once a second). With `rounds_follow`, a
    served run's work folder (its saved model and handoff) is left for the interleaved rounds, whose caller
    removes it with `remove_work`."""
    workdir = folder / ".work" / spec.key
    keep = False
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        baseline_predictions = folder / f"{baseline_key}{PREDICTIONS_SUFFIX}" if baseline_key else None
        log_path = folder / ".logs" / f"{spec.key}.log"
        job = Job(
            spec=spec,
            folder=str(folder),
            baseline_predictions=str(baseline_predictions) if baseline_predictions else None,
            log_path=str(log_path),
            rounds_follow=rounds_follow,
        )
        job_path = workdir / "job.json"
        job_path.write_text(job.model_dump_json(indent=2), encoding="utf-8")
        path = record_path(folder, spec.key)
        supersede(folder, spec.key, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"))
        # Everything local: keep the Hugging Face libraries from looking up the hub (a hang when offline).
        local = spec.model_source.local and spec.dataset_source.local
        offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"} if local else {}
        limit = memory_limit(spec)
        limits = Limits(spec.measurement.timeout_s, limit)
        tick = None if on_phase is None else PhaseWatch(workdir, on_phase).tick
        result = launch(job_path, log_path, limits, spec.threads, offline, tick)
        record = stored_record(path)
        if record is None:
            record = _failure_record(spec, result, limit, read_progress(workdir), log_path)
            save_record(record, folder)
        keep = rounds_follow and record.status == Status.OK and (workdir / HANDOFF_FOLDER).is_dir()
        return record
    finally:
        if not keep:
            remove_work(workdir)


def remove_work(workdir: Path) -> None:
    """Remove a run's work folder (kept when $BENCH_KEEP_WORK is set)."""
    if not os.environ.get(KEEP_WORK_VARIABLE):
        with shielded():
            shutil.rmtree(workdir, ignore_errors=True)
