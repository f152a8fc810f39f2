"""The launcher's parts, without a model: capped logs, tails, the folder lock, signals, crash records."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.core.records import Status, atomic_write_text
from bench.failure import dumped_stack
from bench.folder_lock import FolderBusy, folder_lock
from bench.interrupts import Interrupted, interruptible, shielded
from bench.launchers.single_run import _failure
from bench.launchers.watchdog import LaunchResult, Limits, LogPump, launch, log_tail

from .conftest import write_suite
from .test_plan import runs


def test_log_keeps_head_and_tail_of_a_flood(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    log = tmp_path / "run.log"
    with os.fdopen(read_fd, "rb") as source:
        pump = LogPump(source, log, head=1000, tail=500).start()
        data = bytes(range(256)) * 4096  # 1 MiB
        writer = threading.Thread(target=lambda: (os.write(write_fd, data), os.close(write_fd)))
        writer.start()
        writer.join()
        pump.join(10)
    text = log.read_bytes()
    assert text.startswith(data[:1000]) and text.endswith(data[-500:])
    assert pump.dropped == len(data) - 1500
    assert f"{pump.dropped:,} bytes of output dropped".encode() in text


def test_short_output_is_kept_whole(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"hello\n")
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as source:
        pump = LogPump(source, tmp_path / "a.log", head=4, tail=100).start()
        pump.join(10)
    assert (tmp_path / "a.log").read_bytes() == b"hello\n" and pump.dropped == 0


def test_log_tail_reads_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"a" * 1_000_000 + b"the end")
    assert log_tail(log, 7) == "the end"
    assert log_tail(tmp_path / "missing.log") == ""


def test_a_worker_that_cannot_start_is_reported(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    result = launch(tmp_path / "work" / "job.json", tmp_path / "w.log", Limits(60, None), threads=1)
    assert isinstance(result, LaunchResult) and result.returncode == 1 and not result.timed_out
    assert "job.json" in (tmp_path / "w.log").read_text()
    assert (tmp_path / "work" / "worker.json").is_file()


def test_a_second_holder_is_refused_with_who_holds_it(tmp_path: Path) -> None:
    with folder_lock(tmp_path) as previous:
        assert previous is None
        busy = rf"in use by another bench run \(pid {os.getpid()} "
        with pytest.raises(FolderBusy, match=busy), folder_lock(tmp_path):
            pass
    with folder_lock(tmp_path) as previous:  # released on exit
        assert previous is None


def test_a_lock_left_by_a_killed_run_is_recognised(tmp_path: Path) -> None:
    (tmp_path / ".lock").write_text('{"pid": 999999, "host": "h", "since": "t", "command": "bench run x"}')
    with folder_lock(tmp_path) as previous:
        assert previous is not None and "pid 999999" in previous


@pytest.fixture
def stop_signals_at_default() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP handled as in a terminal, whatever this process inherited: a background
    job of a non-interactive shell starts with SIGINT ignored, which bench keeps ignored by design."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.mark.usefixtures("stop_signals_at_default")
def test_signals_raise_interrupted_with_the_shell_exit_code() -> None:
    with pytest.raises(Interrupted) as caught, interruptible():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)  # let the handler run
    assert caught.value.exit_code == 143 and caught.value.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.usefixtures("stop_signals_at_default")
def test_a_shielded_cleanup_runs_to_its_end(capsys: pytest.CaptureFixture[str]) -> None:
    finished = False
    with pytest.raises(Interrupted) as caught, interruptible(), shielded():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C
        finished = True
    assert finished and caught.value.exit_code == 130
    assert capsys.readouterr().err.count("stopping the running worker first") == 1


def test_records_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o640


def test_the_memory_limit_does_not_change_run_keys(tmp_path: Path) -> None:
    plain = write_suite(tmp_path / "a.yaml", tmp_path, tmp_path)
    capped = write_suite(tmp_path / "b.yaml", tmp_path, tmp_path, measurement={"max_rss_gb": 3.0})
    default = write_suite(tmp_path / "c.yaml", tmp_path, tmp_path, measurement={})
    assert [s.key for s in runs(capped)] == [s.key for s in runs(default)] != [s.key for s in runs(plain)]


LOG = """fault plugin: injecting abort
Fatal Python error: Aborted

Thread 0x00007f5ede4fe6c0 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 331 in wait
  File "/usr/lib/python3.11/threading.py", line 1002 in _bootstrap

Current thread 0x00007f5ee0e13b80 (most recent call first):
  File "/usr/lib/python3.11/ctypes/__init__.py", line 519 in string_at
  File "/site/my_plugin/__init__.py", line 61 in inject
  File "/work/bench/worker.py", line 422 in main
  File "<frozen runpy>", line 198 in _run_module_as_main

Extension modules: numpy, torch (total: 2)
"""


def test_the_main_threads_stack_is_found_in_the_log() -> None:
    found = dumped_stack(LOG, frozenset({"/site/my_plugin/__init__.py"}))
    assert found is not None
    stack, location = found
    assert stack.startswith("Fatal Python error: Aborted\nCurrent thread") and "threading" not in stack
    assert location == "/site/my_plugin/__init__.py:61"
    assert dumped_stack("no dump here") is None


@pytest.mark.parametrize(
    ("result", "status", "kind", "words"),
    [
        (LaunchResult(-11, False, 1.0, 10), Status.ERROR, "crash", "killed by SIGSEGV (Segmentation fault)"),
        (LaunchResult(0, False, 1.0, 10), Status.ERROR, "contract", "exited with status 0"),
        (LaunchResult(3, False, 1.0, 10), Status.ERROR, "crash", "exited with status 3"),
        (LaunchResult(-9, False, 1.0, 5_000_000_000, memory_killed=True), Status.OOM, "oom", "reached 5.00 GB"),
        (LaunchResult(-15, True, 1.0, 10), Status.TIMEOUT, "timeout", "timed out after"),
    ],
)
def test_how_a_worker_ended_becomes_the_record(
    result: LaunchResult, status: Status, kind: str, words: str, tmp_path: Path
) -> None:
    spec = runs(write_suite(tmp_path / "s.yaml", tmp_path, tmp_path))[0]
    got, error = _failure(spec, result, 4_000_000_000, "compress")
    assert got == status and error.type == kind and words in error.message and "in phase compress" in error.message
    assert got.failed


def test_an_ignored_signal_stays_ignored() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with interruptible():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)
