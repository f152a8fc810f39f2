"""Fault injection: a plugin that crashes, hangs, allocates, floods or exits early, and `bench run` itself
stopped by SIGINT, SIGTERM, SIGHUP or kill -9 mid-suite and run again. After each: one valid record per run,
no process left, no work folder left, and records that show one machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from bench.core.job import PARENT_VARIABLE
from bench.core.records import RunRecord, Status, load_records
from bench.report.provenance import provenance

from .conftest import REPO, install_plugin, write_suite

pytestmark = pytest.mark.slow

MACHINE = "lifecycle-box"
MEASUREMENT = {
    "rounds": 1,
    "warmup": 1,
    "min_iterations": 3,
    "min_duration_s": 0,
    "threads": 1,
    "timeout_s": 60,  # the flood row writes 40 MB of log, then a serving process imports torch again (8 s on a slow VM)
    "max_rss_gb": 2.0,
}


@pytest.fixture(scope="module")
def fault_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fault plugin package, installed as a user would install a plugin."""
    return install_plugin(REPO / "tests" / "fault_plugin", tmp_path_factory.mktemp("fault-site"))


def bench_env(site: Path) -> dict[str, str]:
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, BENCH_MACHINE=MACHINE)


def fault(label: str, kind: str, **config: object) -> dict[str, object]:
    return {"name": "fault", "label": label, "config": {"kind": kind, **config}}


def _default_stop_signals() -> None:
    """As from a terminal: the test runner may itself run under nohup or as a background job, whose ignored
    SIGHUP/SIGINT a child would inherit (and bench keeps ignored signals ignored, on purpose)."""
    for sig in (signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


STARTED: dict[int, float] = {}
"""When each `bench run` started by `start` began: its processes began after it (a process left by an
earlier test whose `bench run` had the same, since reused, pid is not one of them)."""


def start(site: Path, suite: Path, results: Path, out: Path) -> subprocess.Popen[bytes]:
    """`bench run` in the background, in its own session (signals go to it alone, as from `kill`)."""
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "run", str(suite), "--results-dir", str(results)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=bench_env(site),
            start_new_session=True,
            preexec_fn=_default_stop_signals,
        )
    STARTED[proc.pid] = psutil.Process(proc.pid).create_time()
    return proc


def run(site: Path, suite: Path, results: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", "run", str(suite), "--results-dir", str(results)],
        capture_output=True,
        text=True,
        env=bench_env(site),
        timeout=600,
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def injected(folder: Path, kind: str) -> bool:
    """Whether a worker has started injecting `kind` (its log says so)."""
    logs = folder / ".logs"
    needle = f"fault plugin: injecting {kind}".encode()
    return logs.is_dir() and any(needle in p.read_bytes() for p in logs.glob("*.log"))


def descendants_of(bench_pid: int) -> list[psutil.Process]:
    """Live processes started for this `bench run` (workers and what they started carry its pid)."""
    found = []
    began = STARTED[bench_pid]
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE or proc.create_time() < began:
                continue
            if proc.environ().get(PARENT_VARIABLE) == str(bench_pid):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def describe(procs: list[psutil.Process]) -> str:
    """Who is left, for a failure message."""
    lines = []
    for proc in procs:
        try:
            lines.append(f"{proc.pid} (parent {proc.ppid()}, {proc.status()}): {' '.join(proc.cmdline())}")
        except psutil.Error as error:
            lines.append(f"{proc.pid}: {error!r}")
    return "; ".join(lines)


def wait_for_descendants(bench_pid: int, timeout: float) -> None:
    """Wait until nothing started for `bench_pid` is alive; fail naming what is."""
    try:
        wait_until(lambda: not descendants_of(bench_pid), timeout, f"the processes of bench run {bench_pid} to end")
    except AssertionError as error:
        raise AssertionError(f"{error}: {describe(descendants_of(bench_pid))}") from None


def assert_nothing_left(bench_pid: int, folder: Path) -> None:
    wait_for_descendants(bench_pid, 15)
    work = folder / ".work"
    assert not work.exists() or not any(work.iterdir()), list(work.iterdir())


def records_of(folder: Path) -> dict[str, RunRecord]:
    loaded = load_records([folder])
    assert not loaded.unreadable, loaded.unreadable
    by_label = {r.spec.compressor.display_name: r for r in loaded.records}
    assert len(by_label) == len(loaded.records), "one record per run"
    return by_label


def assert_one_machine(records: list[RunRecord]) -> None:
    prov = provenance(records)
    assert len(prov.machines) == 1, prov.machines
    assert all(r.environment is not None for r in records)


def test_each_fault_gives_one_truthful_record(
    fault_site: Path, tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path
) -> None:
    compressors = [
        {"name": "baseline"},
        fault("raise", "raise"),
        fault("abort", "abort"),
        fault("segfault", "segfault"),
        fault("hang", "child"),
        fault("stubborn", "stubborn"),
        fault("alloc", "alloc", alloc_gb=6.0),
        fault("flood", "flood", flood_mb=40),
        fault("exit0", "exit0"),
    ]
    suite = write_suite(
        tmp_path / "faults.yaml", tiny_model_dir, tiny_squad_dir, compressors=compressors, measurement=MEASUREMENT
    )
    results = tmp_path / "results"
    out = tmp_path / "out.txt"
    proc = start(fault_site, suite, results, out)
    code = proc.wait(timeout=600)
    text = out.read_text()
    assert code == 1, text  # runs failed; the suite went on to the end
    folder = results / MACHINE / "tiny"
    assert_nothing_left(proc.pid, folder)
    records = records_of(folder)
    assert set(records) == {c.get("label", c["name"]) for c in compressors}
    assert_one_machine(list(records.values()))
    assert records["baseline"].status == Status.OK

    for label, record in records.items():
        assert record.started_at <= record.finished_at
        if label != "baseline":
            assert "load" in record.phases_s, label  # the phases completed before the fault are kept
        if record.error is not None:
            assert record.error.phase == "compress", (label, record.error)
            assert record.error.log and Path(record.error.log).is_file()

    raised = records["raise"].error
    assert raised is not None and raised.type == "RuntimeError" and "bench_fault_plugin" in (raised.location or "")

    for label, sig, words in (("abort", "SIGABRT", "Aborted"), ("segfault", "SIGSEGV", "Segmentation fault")):
        error = records[label].error
        assert records[label].status == Status.ERROR
        assert error is not None and error.type == "crash" and error.signal == sig, error
        assert f"killed by {sig}" in error.message
        # faulthandler's stack of the main thread, found at the end of the log, points into the plugin
        assert words in error.traceback_tail and "in inject" in error.traceback_tail
        assert "bench_fault_plugin" in (error.location or ""), error.location

    for label in ("hang", "stubborn"):
        record = records[label]
        assert record.status == Status.TIMEOUT and record.error is not None
        assert record.wall_s >= MEASUREMENT["timeout_s"]
    # the hung worker received SIGTERM and its faulthandler wrote where it was; the stubborn one ignored
    # SIGTERM and was killed
    assert "inject" in (records["hang"].error.traceback_tail if records["hang"].error else "")
    assert records["stubborn"].error is not None and records["stubborn"].error.signal == "SIGKILL"

    oom = records["alloc"]
    assert oom.status == Status.OOM and oom.error is not None
    assert oom.error.peak_rss is not None and oom.error.peak_rss > 2.0e9
    assert "max_rss_gb" in oom.error.message

    flood = records["flood"]
    assert flood.status == Status.OK
    log = folder / ".logs" / f"{flood.spec.key}.log"
    assert log.stat().st_size < 11 << 20
    assert b"log capped" in log.read_bytes()

    exit0 = records["exit0"].error
    assert exit0 is not None and exit0.type == "contract" and exit0.exit_code == 0 and exit0.signal is None

    mask = os.umask(0)
    os.umask(mask)
    for path in folder.glob("*.json"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


STOPS = [
    (signal.SIGINT, 130),
    (signal.SIGTERM, 143),
    (signal.SIGHUP, 129),
    (signal.SIGKILL, -signal.SIGKILL),
]


@pytest.mark.parametrize(("sig", "expected"), STOPS, ids=[s.name for s, _ in STOPS])
def test_stopped_mid_suite_then_resumed(
    sig: signal.Signals, expected: int, fault_site: Path, tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path
) -> None:
    marker = tmp_path / "hung-once"
    compressors = [{"name": "baseline"}, fault("hang", "child", once_marker=str(marker)), fault("after", "none")]
    suite = write_suite(
        tmp_path / "stop.yaml", tiny_model_dir, tiny_squad_dir, compressors=compressors, measurement=MEASUREMENT
    )
    results = tmp_path / "results"
    folder = results / MACHINE / "tiny"
    proc = start(fault_site, suite, results, tmp_path / "first.txt")
    wait_until(lambda: injected(folder, "child"), 120, "the hanging row")
    time.sleep(1.0)
    if sig == signal.SIGTERM:  # meanwhile, a second bench run on the same folder is refused
        second = run(fault_site, suite, results)
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1 and "in use by another bench run" in second.stderr
        assert f"pid {proc.pid}" in second.stderr
    os.kill(proc.pid, sig)
    assert proc.wait(timeout=30) == expected, (tmp_path / "first.txt").read_text()
    # the worker and the process it started end with bench run, even after kill -9 (the parent-death signal)
    wait_for_descendants(proc.pid, 15)
    if sig != signal.SIGKILL:
        assert_nothing_left(proc.pid, folder)
        assert f"stopped by {sig.name}" in (tmp_path / "first.txt").read_text()
    stored = records_of(folder)
    assert set(stored) == {"baseline"}, "the interrupted run stores nothing, so it runs again"

    again = run(fault_site, suite, results)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "stored" in again.stdout  # the baseline is reused, not measured again
    if sig == signal.SIGKILL:
        assert "the last run here" in again.stdout and "cleaned up after an interrupted run" in again.stdout
        assert_nothing_left(proc.pid, folder)
    records = records_of(folder)
    assert set(records) == {"baseline", "hang", "after"}
    assert all(r.status == Status.OK for r in records.values())
    assert_one_machine(list(records.values()))
    assert not (folder / ".work").exists() or not any((folder / ".work").iterdir())


def test_second_ctrl_c_does_not_cancel_the_cleanup(
    fault_site: Path, tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path
) -> None:
    compressors = [fault("stubborn", "stubborn")]
    suite = write_suite(
        tmp_path / "twice.yaml", tiny_model_dir, tiny_squad_dir, compressors=compressors, measurement=MEASUREMENT
    )
    results = tmp_path / "results"
    folder = results / MACHINE / "tiny"
    out = tmp_path / "out.txt"
    proc = start(fault_site, suite, results, out)
    wait_until(lambda: injected(folder, "stubborn"), 120, "the stubborn row")
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(1.0)  # the worker ignores SIGTERM: the launcher waits 5 s before SIGKILL
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    text = out.read_text()
    assert "still stopping" in text or "stopping the running worker first" in text, text
    assert_nothing_left(proc.pid, folder)
