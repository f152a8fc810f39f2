"""What passes between a launcher and the worker process of one run: the job it is handed, the progress file
it keeps (so that a launcher can write a truthful record when the worker dies without one), and the
environment variable that names the launcher's process."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from bench.core.environment import Environment
from bench.core.records import atomic_write_text
from bench.core.spec import RunSpec

PARENT_VARIABLE = "BENCH_PARENT_PID"
"""The launcher's process id, in the worker's environment: the worker stops when that process is gone."""


class Job(BaseModel):
    """What the launcher hands the worker."""

    spec: RunSpec
    folder: str
    baseline_predictions: str | None = None
    log_path: str | None = None
    """Where the launcher captures this process's output (named in error records)."""
    rounds_follow: bool = False
    """The launcher times the served rows of this run's group again in interleaved rounds: a served run
    times one slice itself and leaves its serving recipe and timing inputs in its work folder for them."""


PROGRESS_FILE = "progress.json"


class Progress(BaseModel):
    """The worker's state as of its last phase change."""

    started_at: str
    phase: str | None = None
    phases_s: dict[str, float] = Field(default_factory=dict)
    """Seconds of each phase completed so far."""
    environment: Environment | None = None


def write_progress(workdir: Path, progress: Progress) -> None:
    """Replace the work folder's progress file."""
    atomic_write_text(workdir / PROGRESS_FILE, progress.model_dump_json())


def read_progress(workdir: Path) -> Progress | None:
    """The last progress the worker wrote, or None."""
    try:
        return Progress.model_validate_json((workdir / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None
