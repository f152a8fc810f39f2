"""The `local` launcher (the default): the suite's runs one after another on this machine, each in a fresh
worker process, in plan order (each group's baseline before its compressed runs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial

from rich.console import Console

from bench.core.environment import machine_name
from bench.core.launcher import ResolvedSuite
from bench.core.records import RunRecord
from bench.core.spec import RunSpec
from bench.launchers.board import RunBoard
from bench.launchers.rounds import interleave
from bench.launchers.sequence import Pending, Site, SuiteLauncher, environment_for
from bench.launchers.single_run import remove_work, run_one


class LocalLauncher(SuiteLauncher):
    """Runs on this machine, one at a time, so that no two timed runs share its cores."""

    name = "local"
    description = "this machine, one run at a time, each in a fresh process (the default)"

    @contextlib.contextmanager
    def site(self, resolved: ResolvedSuite, console: Console) -> Iterator[Site]:
        yield Site({machine_name(): environment_for(resolved.suite.devices)})

    def execute(self, pending: Pending, board: RunBoard, console: Console) -> list[RunRecord]:
        folder = pending.folder(machine_name())
        records = []
        for group in groups(pending.runs):
            interleaved = group[0].measurement.rounds > 1
            measured = []
            try:
                for spec in group:
                    board.started(spec)
                    record = run_one(spec, folder, pending.baseline_of(spec), partial(board.phase, spec), interleaved)
                    board.finished(record)
                    measured.append(record)
                if interleaved:
                    measured = interleave(measured, folder, board.say)
            finally:
                for spec in group:
                    remove_work(folder / ".work" / spec.key)
            records += measured
        return records


def groups(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """The runs of each group, in plan order (a group's runs are adjacent in a plan)."""
    found: dict[str, list[RunSpec]] = {}
    for spec in runs:
        found.setdefault(spec.group, []).append(spec)
    return list(found.values())
