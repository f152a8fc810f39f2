"""The sequence every launcher shares: plan the suite, lock and clean each results folder, select the runs
(--only), reuse what is stored, and hand the rest to the launcher, which decides only where and in what order
they execute (each stored as it ends). A new launcher subclasses `SuiteLauncher` and writes `site` and
`execute`."""

from __future__ import annotations

import contextlib
import shutil
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench.core.devices import Device
from bench.core.environment import Environment, capture, default_threads
from bench.core.launcher import Launcher, Outcome, ResolvedSuite, RunOptions
from bench.core.records import RunRecord, record_path, stored_record
from bench.core.spec import RunSpec
from bench.folder_lock import folder_lock
from bench.launchers.board import DONE_STATUSES, RunBoard
from bench.launchers.watchdog import reap
from bench.plan import expand, results_folder
from bench.report.text import for_console
from bench.reuse import still_holds


def plan(resolved: ResolvedSuite, options: RunOptions, threads: int | None = None) -> list[RunSpec]:
    """The suite's runs under these options; `threads` is the default thread count of the machines that
    will run them (this machine's physical cores when None), used where the suite sets none."""
    suite = resolved.suite
    return expand(
        suite,
        model_source=resolved.model,
        dataset_source=resolved.dataset,
        calibration_source=resolved.calibration,
        plugins=resolved.plugins,
        tokenizer_corpus=resolved.tokenizer_corpus,
        threads=suite.measurement.threads or threads or default_threads(),
        limit=options.limit,
        quick=options.quick,
    )


def clean_work(folder: Path, console: Console) -> None:
    """Stop what a killed `bench run` left running in this folder and remove its work folders. Called with
    the folder's lock held, so no work folder here belongs to a live run."""
    work = folder / ".work"
    if not work.is_dir():
        return
    stale = [p for p in work.iterdir() if p.is_dir()]
    stopped = sum(reap(p) for p in stale)
    size = sum(f.stat().st_size for p in stale for f in p.rglob("*") if f.is_file())
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    if stale:
        console.print(
            f"  [yellow]cleaned up after an interrupted run:[/yellow] removed {len(stale)} work folder(s) "
            f"({size / 1e6:.1f} MB), stopped {stopped} leftover process(es)"
        )


def selected(specs: list[RunSpec], only: list[str] | None) -> list[RunSpec]:
    """The runs of the rows named by --only (all when None), in plan order."""
    return [s for s in specs if only is None or s.compressor.display_name in only]


def baseline_keys(specs: list[RunSpec]) -> dict[str, str]:
    """Each group's baseline run key (from the whole plan, so that --only keeps its agreement)."""
    return {s.group: s.key for s in specs if s.is_baseline}


def environment_for(device_names: Iterable[Device]) -> Environment:
    """This machine's environment, with its GPUs when one of the devices is CUDA (which imports torch)."""
    return capture(gpus=any(d.is_cuda for d in device_names))


def reusable(folder: Path, spec: RunSpec, here: Environment, force: bool = False) -> RunRecord | None:
    """The stored record of this run when it can stand for a new one: done (ok or skipped), decided in an
    environment that still holds (see bench.reuse), and not forced to run again."""
    stored = None if force else stored_record(record_path(folder, spec.key))
    if stored is not None and stored.status in DONE_STATUSES and still_holds(stored, here):
        return stored
    return None


@dataclass(frozen=True)
class Site:
    """Where a launcher's runs may execute: each machine that measures, with the environment that decides
    whether a record stored from it still holds, and the machines' default thread count (None: this one's)."""

    machines: dict[str, Environment]
    threads: int | None = None


@dataclass(frozen=True)
class Pending:
    """What the shared sequence hands a launcher: the runs to measure, in plan order (each group's baseline
    before its compressed runs), and what they need of the runs around them."""

    runs: list[RunSpec]
    baselines: dict[str, str]
    """Each group's baseline run key, from the whole plan (a baseline left out by --only keeps its role)."""
    reused: dict[str, RunRecord]
    """The selected runs found stored, by key."""
    folder: Callable[[str], Path]
    """The results folder of the runs measured on a machine."""

    def baseline_of(self, spec: RunSpec) -> str | None:
        """The key of the baseline whose predictions `spec` is compared with (None for a baseline)."""
        return None if spec.is_baseline else self.baselines.get(spec.group)


class SuiteLauncher(Launcher):
    """A launcher written as the two decisions that are its own: `site` (where runs may execute) and `execute`
    (where and in what order each pending run does). Everything else is this class's `run`."""

    @abstractmethod
    def site(self, resolved: ResolvedSuite, console: Console) -> AbstractContextManager[Site]:
        """Reach the machines that will measure (held open while the runs execute)."""

    @abstractmethod
    def execute(self, pending: Pending, board: RunBoard, console: Console) -> list[RunRecord]:
        """Measure every pending run, storing each record in `pending.folder(machine)` as it ends, and return
        the records. A stop signal cancels what is in flight and propagates."""

    def run(self, resolved: ResolvedSuite, console: Console) -> list[Outcome]:
        options = self.options
        with self.site(resolved, console) as site:
            specs = plan(resolved, options, site.threads)
            folders = {m: results_folder(options.results_dir, m, resolved.suite.name) for m in site.machines}
            chosen = selected(specs, options.only)
            with locked(folders.values(), console), RunBoard(len(chosen), console) as board:
                reused = {}
                for spec in chosen:
                    record = stored_here(spec, folders, site.machines, options.force)
                    if record is not None:
                        reused[spec.key] = record
                        board.stored(spec)
                pending = Pending(
                    [s for s in chosen if s.key not in reused], baseline_keys(specs), reused, folders.__getitem__
                )
                measured = {r.spec.key: r for r in self.execute(pending, board, console)}
        return [
            Outcome(reused[s.key], reused=True) if s.key in reused else Outcome(measured[s.key], reused=False)
            for s in chosen
            if s.key in reused or s.key in measured
        ]


@contextlib.contextmanager
def locked(folders: Iterable[Path], console: Console) -> Iterator[None]:
    """Hold each results folder's lock, cleaning up after a `bench run` that was killed there."""
    with contextlib.ExitStack() as stack:
        for folder in sorted(folders):
            killed = stack.enter_context(folder_lock(folder))
            if killed is not None:
                console.print(f"  [yellow]resuming:[/yellow] the last run here ({for_console(killed)}) was killed")
            clean_work(folder, console)
        yield


def stored_here(
    spec: RunSpec, folders: dict[str, Path], machines: dict[str, Environment], force: bool
) -> RunRecord | None:
    """A stored record of `spec` from any of the site's machines that can stand for a new run."""
    for machine, folder in folders.items():
        record = reusable(folder, spec, machines[machine], force)
        if record is not None:
            return record
    return None
