"""The progress board: each run's phase while it runs, an estimate of the time left from the runs measured so
far, and, when the output is not a terminal, a line per run with its phase times."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from bench.core.job import Progress, write_progress
from bench.core.records import Status
from bench.launchers.board import RunBoard
from bench.launchers.single_run import PhaseWatch

from .test_records import make_record, make_spec


def test_the_board_shows_phases_and_estimates_the_time_left() -> None:
    out = io.StringIO()
    specs = [make_spec("baseline", "k1"), make_spec("bf16", "k2"), make_spec("onnx", "k3")]
    with RunBoard(3, Console(file=out, force_terminal=False, width=200)) as board:
        assert board.time_left() is None  # nothing measured yet: no guess
        board.stored(specs[0])
        board.started(specs[1])
        board.phase(specs[1], "compress")
        assert board.running["k2"].endswith("· compress")
        record = make_record(spec=specs[1], status=Status.OK, wall_s=40.0, phases_s={"load": 2.0, "compress": 30.5})
        board.finished(record)
        left = board.time_left()
        assert left is not None and abs(left - 40.0) < 1e-6  # one queued run at the mean of the measured ones
        board.started(specs[2])
        left = board.time_left()
        assert left is not None and left <= 40.0
    text = out.getvalue()
    assert "(40 s: load 2.0, compress 30.5)" in text  # not a terminal: the phases of each finished run


def test_a_phase_watch_hears_each_phase_once(tmp_path: Path) -> None:
    folder = tmp_path
    heard: list[str] = []
    watch = PhaseWatch(folder, heard.append)
    watch.tick()  # no progress file yet
    for phase in ("load", "load", "compress"):
        write_progress(folder, Progress(started_at="t", phase=phase))
        watch.tick()
    assert heard == ["load", "compress"]
