"""Run one job in a fresh Python process, with a timeout, its output captured to a log file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LaunchResult:
    """How the child process ended."""

    returncode: int | None
    timed_out: bool
    wall_s: float


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def launch(
    job_path: Path, log_path: Path, timeout_s: float, threads: int, extra_env: dict[str, str] | None = None
) -> LaunchResult:
    """Start `python -m bench.worker job_path`; kill its whole process group on timeout or Ctrl-C."""
    env = dict(os.environ)
    env.update(extra_env or {})
    env.update(
        {
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", str(job_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout_s)
            return LaunchResult(code, False, time.perf_counter() - start)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return LaunchResult(proc.returncode, True, time.perf_counter() - start)
        except BaseException:
            _kill_group(proc)
            raise


def log_tail(log_path: Path, limit: int = 4000) -> str:
    """The end of a run's log."""
    try:
        data = log_path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", errors="replace")
