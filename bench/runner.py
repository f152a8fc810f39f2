"""Run a suite: expand it, skip what is stored, launch each run in its own process, store every outcome."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench import __version__
from bench.environment import Environment, capture, default_threads, machine_name
from bench.launchers.local import launch, log_tail
from bench.plan import RunSpec, expand, results_folder
from bench.records import (
    PREDICTIONS_SUFFIX,
    ErrorInfo,
    RecordError,
    RunRecord,
    Status,
    load_record,
    record_path,
    save_record,
    supersede,
)
from bench.report.text import for_console
from bench.validate import ResolvedSuite
from bench.worker import Job

DONE_STATUSES = (Status.OK, Status.SKIPPED)


@dataclass
class RunOptions:
    """Command-line choices of `bench run`."""

    results_dir: Path
    limit: int | None = None
    quick: bool = False
    force: bool = False
    only: list[str] | None = None
    """Compressor rows (display names) to run; None runs them all."""


@dataclass
class Outcome:
    """A run's record, and whether it was measured now or found stored."""

    record: RunRecord
    reused: bool


def plan(resolved: ResolvedSuite, options: RunOptions) -> list[RunSpec]:
    """The suite's runs under these options."""
    suite = resolved.suite
    return expand(
        suite,
        model_source=resolved.model,
        dataset_source=resolved.dataset,
        calibration_source=resolved.calibration,
        plugins=resolved.plugins,
        tokenizer_corpus=resolved.tokenizer_corpus,
        threads=suite.measurement.threads or default_threads(),
        limit=options.limit,
        quick=options.quick,
    )


def _stored(path: Path) -> RunRecord | None:
    if not path.is_file():
        return None
    try:
        return load_record(path)
    except RecordError:
        return None


def same_machine(record: RunRecord, here: Environment) -> bool:
    """Whether a stored record was measured on hardware like this machine's (same CPU model and core
    count): a host name alone does not tell, and another machine's figures must not be reused."""
    if record.environment is None:
        return True
    return (record.environment.cpu_model, record.environment.logical_cores) == (here.cpu_model, here.logical_cores)


def _failure_record(spec: RunSpec, status: Status, message: str, log: Path, wall_s: float) -> RunRecord:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return RunRecord(
        status=status,
        spec=spec,
        machine=machine_name(),
        bench_version=__version__,
        started_at=stamp,
        finished_at=stamp,
        wall_s=wall_s,
        error=ErrorInfo(type=status.value, message=message, traceback_tail=log_tail(log), log=str(log)),
    )


def run_one(spec: RunSpec, folder: Path, baseline_key: str | None) -> RunRecord:
    """Launch one run in a fresh process; store a record whatever happens to it."""
    workdir = folder / ".work" / spec.key
    workdir.mkdir(parents=True, exist_ok=True)
    baseline_predictions = folder / f"{baseline_key}{PREDICTIONS_SUFFIX}" if baseline_key else None
    log_path = folder / ".logs" / f"{spec.key}.log"
    job = Job(
        spec=spec,
        folder=str(folder),
        baseline_predictions=str(baseline_predictions) if baseline_predictions else None,
        log_path=str(log_path),
    )
    job_path = workdir / "job.json"
    job_path.write_text(job.model_dump_json(indent=2), encoding="utf-8")
    path = record_path(folder, spec.key)
    supersede(folder, spec.key, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"))
    # Everything local: keep the Hugging Face libraries from looking up the hub (a hang when offline).
    local = spec.model_source.local and spec.dataset_source.local
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"} if local else {}
    result = launch(job_path, log_path, spec.measurement.timeout_s, spec.threads, offline)
    record = _stored(path)
    if record is None:
        if result.timed_out:
            status, message = Status.TIMEOUT, f"timed out after {spec.measurement.timeout_s:g} s"
        else:
            status, message = (
                Status.ERROR,
                f"worker process died (exit code {result.returncode}) without a record",
            )
        record = _failure_record(spec, status, message, log_path, result.wall_s)
        save_record(record, folder)
    shutil.rmtree(workdir, ignore_errors=True)
    return record


def run_suite(resolved: ResolvedSuite, options: RunOptions, console: Console) -> list[Outcome]:
    """Run (or reuse) every run of the suite, baselines first, with a progress display."""
    specs = plan(resolved, options)
    folder = results_folder(options.results_dir, machine_name(), resolved.suite.name)
    baselines = {s.group: s.key for s in specs if s.is_baseline}
    here = capture()
    if options.only:
        specs = [s for s in specs if s.compressor.display_name in options.only]
    outcomes: list[Outcome] = []
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        bar = progress.add_task("runs", total=len(specs))
        for spec in specs:
            label = f"{spec.compressor.display_name} {spec.device} bs{spec.batch_size} seq{spec.sequence_length}"
            stored = _stored(record_path(folder, spec.key))
            if (
                stored is not None
                and stored.status in DONE_STATUSES
                and not options.force
                and same_machine(stored, here)
            ):
                outcomes.append(Outcome(stored, reused=True))
                console.print(f"  [dim]stored[/dim]  {for_console(label)}")
                progress.advance(bar)
                continue
            progress.update(bar, description=label)
            baseline_key = None if spec.is_baseline else baselines.get(spec.group)
            record = run_one(spec, folder, baseline_key)
            outcomes.append(Outcome(record, reused=False))
            console.print(f"  {_status_mark(record.status)}  {for_console(label)}  [dim]({record.wall_s:.0f} s)[/dim]")
            if record.status != Status.OK and record.error is not None:
                console.print(f"           {for_console(record.error.describe())}", highlight=False)
            progress.advance(bar)
    return outcomes


def _status_mark(status: Status) -> str:
    return {
        Status.OK: "[green]ok[/green]     ",
        Status.SKIPPED: "[yellow]skipped[/yellow]",
        Status.ERROR: "[red]error[/red]  ",
        Status.TIMEOUT: "[red]timeout[/red]",
    }[status]
