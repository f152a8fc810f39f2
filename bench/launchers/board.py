"""The progress board of `bench run`: how many runs are queued, running (and where) and done, and one line
per finished run. Every launcher shows the same board."""

from __future__ import annotations

import contextlib
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench.core.records import RunRecord, Status
from bench.core.spec import RunSpec
from bench.report.text import for_console

DONE_STATUSES = (Status.OK, Status.SKIPPED)

_MARKS = {
    Status.OK: "[green]ok[/green]     ",
    Status.SKIPPED: "[yellow]skipped[/yellow]",
    Status.ERROR: "[red]error[/red]  ",
    Status.TIMEOUT: "[red]timeout[/red]",
    Status.OOM: "[red]oom[/red]    ",
}


def run_label(spec: RunSpec) -> str:
    """How the board names a run: its row, device and shape."""
    return f"{spec.compressor.display_name} {spec.device} bs{spec.batch_size} seq{spec.sequence_length}"


def phase_times(record: RunRecord) -> str:
    """Each phase's seconds, in the order the run went through them."""
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in record.phases_s.items()) or "no phase completed"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class RunBoard:
    """A live bar over the selected runs, with counts of queued, running and done runs."""

    def __init__(self, total: int, console: Console) -> None:
        self.console = console
        self.total = total
        self.running: dict[str, str] = {}
        """Run key -> what the bar says of it (its label, its node when it has one, and its phase)."""
        self.where: dict[str, str] = {}
        self.began: dict[str, float] = {}
        """Run key -> when it started (monotonic clock), for the estimate of the time left."""
        self.walls: list[float] = []
        """Wall times of the runs measured so far (stored ones excluded)."""
        self.done = 0
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("[dim]{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._bar = self._progress.add_task("runs", total=total, counts="")

    def __enter__(self) -> RunBoard:
        self._progress.start()
        self._refresh()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with contextlib.suppress(OSError):  # a terminal gone with SIGHUP must not hide why the run stopped
            self._progress.stop()

    def time_left(self) -> float | None:
        """Seconds until the last selected run ends, estimated from the mean wall time of the runs measured so
        far (None before the first one ends)."""
        if not self.walls:
            return None
        mean = sum(self.walls) / len(self.walls)
        queued = self.total - self.done - len(self.running)
        now = time.monotonic()
        return queued * mean + sum(max(0.0, mean - (now - self.began.get(k, now))) for k in self.running)

    def _refresh(self) -> None:
        queued = self.total - self.done - len(self.running)
        counts = f"queued {queued} · running {len(self.running)} · done {self.done}"
        left = self.time_left()
        if left is not None:
            counts += f" · about {_duration(left)} left"
        description = " | ".join(self.running.values()) or "runs"
        self._progress.update(self._bar, description=for_console(description), completed=self.done, counts=counts)

    def stored(self, spec: RunSpec) -> None:
        """A run whose stored record stands for it."""
        self.console.print(f"  [dim]stored[/dim]  {for_console(run_label(spec))}")
        self.done += 1
        self._refresh()

    def started(self, spec: RunSpec, where: str | None = None) -> None:
        """A run that began executing (on `where`, a node, when the launcher has several)."""
        self.where[spec.key] = f" @ {where}" if where else ""
        self.began[spec.key] = time.monotonic()
        self.running[spec.key] = run_label(spec) + self.where[spec.key]
        self._refresh()

    def phase(self, spec: RunSpec, phase: str) -> None:
        """A running run entered `phase` (load, compress, ..., evaluate)."""
        if spec.key in self.running:
            self.running[spec.key] = f"{run_label(spec)}{self.where.get(spec.key, '')} · {phase}"
            self._refresh()

    def say(self, message: str) -> None:
        """A line about the suite's progress between runs (the interleaved rounds)."""
        self.console.print(f"  [dim]{for_console(message)}[/dim]", highlight=False)

    def finished(self, record: RunRecord, where: str | None = None) -> None:
        """A run that ended with this record: one line, and the error's when it failed."""
        self.running.pop(record.spec.key, None)
        self.began.pop(record.spec.key, None)
        self.walls.append(record.wall_s)
        self.done += 1
        place = f" on {where}" if where else ""
        phases = "" if self.console.is_terminal else ": " + phase_times(record)
        self.console.print(
            f"  {_MARKS[record.status]}  {for_console(run_label(record.spec))}  "
            f"[dim]({record.wall_s:.0f} s{for_console(place)}{for_console(phases)})[/dim]"
        )
        if record.status not in DONE_STATUSES and record.error is not None:
            self.console.print(f"           {for_console(record.error.describe())}", highlight=False)
        self._refresh()
