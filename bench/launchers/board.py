"""The progress board of `bench run`: how many runs are queued, running (and where) and done, and one line
per finished run. Every launcher shows the same board."""

from __future__ import annotations

import contextlib
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


class RunBoard:
    """A live bar over the selected runs, with counts of queued, running and done runs."""

    def __init__(self, total: int, console: Console) -> None:
        self.console = console
        self.total = total
        self.running: dict[str, str] = {}
        """Run key -> what the bar says of it (its label, and its node when it has one)."""
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

    def _refresh(self) -> None:
        queued = self.total - self.done - len(self.running)
        counts = f"queued {queued} · running {len(self.running)} · done {self.done}"
        description = " | ".join(self.running.values()) or "runs"
        self._progress.update(self._bar, description=for_console(description), completed=self.done, counts=counts)

    def stored(self, spec: RunSpec) -> None:
        """A run whose stored record stands for it."""
        self.console.print(f"  [dim]stored[/dim]  {for_console(run_label(spec))}")
        self.done += 1
        self._refresh()

    def started(self, spec: RunSpec, where: str | None = None) -> None:
        """A run that began executing (on `where`, a node, when the launcher has several)."""
        self.running[spec.key] = run_label(spec) + (f" @ {where}" if where else "")
        self._refresh()

    def finished(self, record: RunRecord, where: str | None = None) -> None:
        """A run that ended with this record: one line, and the error's when it failed."""
        self.running.pop(record.spec.key, None)
        self.done += 1
        place = f" on {where}" if where else ""
        self.console.print(
            f"  {_MARKS[record.status]}  {for_console(run_label(record.spec))}  "
            f"[dim]({record.wall_s:.0f} s{for_console(place)})[/dim]"
        )
        if record.status not in DONE_STATUSES and record.error is not None:
            self.console.print(f"           {for_console(record.error.describe())}", highlight=False)
        self._refresh()
