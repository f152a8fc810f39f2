"""What a worker has reached, kept in its work folder, so that the launcher can write a truthful record
when the worker dies without writing one: its real start time, its phase and its environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from bench.environment import Environment
from bench.records import atomic_write_text

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
