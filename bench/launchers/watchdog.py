"""Run one job in a fresh Python process, in its own process group, watched until it ends.

The launcher enforces the run's limits from outside the worker, where a broken plugin cannot interfere:
- a wall-clock timeout;
- a memory limit on the resident memory of the worker's whole process tree, sampled every 0.1 s, so that
  one run cannot take the machine down with it (the kernel's OOM killer picks its own victims);
- a cap on the log (its head and its tail are kept), read from the worker's output by a thread.

Whatever ends the wait (the worker exits, a limit, or a stop signal to `bench run`), the worker's process
group is stopped before `launch` returns or raises, and that cleanup is shielded from further signals.
The worker carries a token in its environment (inherited by anything it starts), so that a later
`bench run` can find and stop processes left by a `bench run` that was killed outright (`reap`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

from bench.core.job import PARENT_VARIABLE
from bench.interrupts import shielded

WATCH_INTERVAL_S = 0.1
TICK_S = 1.0
TREE_REFRESH_S = 1.0
IDENTITY_FILE = "worker.json"
TOKEN_VARIABLE = "BENCH_WORKER_TOKEN"


@dataclass(frozen=True)
class Limits:
    """What the launcher enforces on one worker."""

    timeout_s: float
    max_rss_bytes: int | None
    log_head_bytes: int = 8 << 20
    log_tail_bytes: int = 2 << 20


@dataclass(frozen=True)
class LaunchResult:
    """How the worker ended."""

    returncode: int | None
    timed_out: bool
    wall_s: float
    peak_rss: int
    """The largest sampled resident memory of the worker's process tree, in bytes."""
    memory_killed: bool = False
    log_dropped_bytes: int = 0


class LogPump:
    """Copies the worker's output to its log: the first `head` bytes, a line saying how much was dropped,
    then the last `tail` bytes. Memory stays bounded by `tail`, however much the worker writes."""

    def __init__(self, source: IO[bytes], path: Path, head: int, tail: int) -> None:
        self.source, self.path, self.head, self.tail = source, path, head, tail
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="log-pump", daemon=True)

    def start(self) -> LogPump:
        """Begin copying in the background."""
        self._thread.start()
        return self

    def _run(self) -> None:
        written = 0
        ring: deque[bytes] = deque()
        ring_bytes = 0
        with self.path.open("wb") as log:
            for chunk in iter(lambda: self.source.read1(1 << 16), b""):  # type: ignore[attr-defined]
                if written < self.head:
                    keep = chunk[: self.head - written]
                    log.write(keep)
                    log.flush()
                    written += len(keep)
                    chunk = chunk[len(keep) :]
                if not chunk:
                    continue
                ring.append(chunk)
                ring_bytes += len(chunk)
                while ring and ring_bytes - len(ring[0]) >= self.tail:
                    ring_bytes -= len(ring[0])
                    self.dropped += len(ring.popleft())
            tail = b"".join(ring)
            self.dropped += max(0, len(tail) - self.tail)
            if self.dropped:
                log.write(f"\n[bench: log capped: {self.dropped:,} bytes of output dropped here]\n".encode())
            log.write(tail[-self.tail :] if self.tail else b"")

    def join(self, timeout: float) -> None:
        """Wait for the end of the output (a descendant that keeps the pipe open is not waited for)."""
        self._thread.join(timeout)


class TreeMemory:
    """Sampled resident memory of a process and its descendants."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)  # the Popen object still holds the pid: it cannot be reused yet
        self.members: list[psutil.Process] = [self.root]
        self.refreshed = 0.0
        self.peak = 0

    def sample(self) -> int:
        """RSS of the tree now, in bytes (descendants are looked up once a second)."""
        now = time.monotonic()
        if now - self.refreshed > TREE_REFRESH_S:
            with contextlib.suppress(psutil.Error):
                self.members = [self.root, *self.root.children(recursive=True)]
            self.refreshed = now
        total = 0
        for member in self.members:
            with contextlib.suppress(psutil.Error):
                total += member.memory_info().rss
        self.peak = max(self.peak, total)
        return total


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """If the worker still runs: SIGTERM to its process group (its faulthandler writes the stack to the log),
    then SIGKILL after 5 s. Then SIGKILL to whatever the group still holds."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(timeout=5.0)
                break
            except subprocess.TimeoutExpired:
                continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # descendants left in the group after the worker itself ended
    proc.wait()


def worker_env(threads: int, token: str, extra: dict[str, str] | None) -> dict[str, str]:
    """The worker's environment: pinned thread pools, unbuffered output, the parent's pid and the token."""
    env = dict(os.environ)
    env.update(extra or {})
    env.update(
        {
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            TOKEN_VARIABLE: token,
            PARENT_VARIABLE: str(os.getpid()),
        }
    )
    return env


def launch(
    job_path: Path,
    log_path: Path,
    limits: Limits,
    threads: int,
    extra_env: dict[str, str] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> LaunchResult:
    """Start `python -m bench.worker job_path` and watch it to its end (see the module docstring); `on_tick`
    is called about once a second meanwhile (to show how far the run got)."""
    token = uuid.uuid4().hex
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    proc: subprocess.Popen[bytes] | None = None
    pump: LogPump | None = None
    memory: TreeMemory | None = None
    timed_out = memory_killed = False
    try:
        with shielded():  # a signal between the start and the identity file would leave an unknown worker
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.worker", str(job_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=worker_env(threads, token, extra_env),
                start_new_session=True,
            )
            identity = {"pid": proc.pid, "token": token, "parent": os.getpid()}
            (job_path.parent / IDENTITY_FILE).write_text(json.dumps(identity), encoding="utf-8")
            assert proc.stdout is not None
            pump = LogPump(proc.stdout, log_path, limits.log_head_bytes, limits.log_tail_bytes).start()
            memory = TreeMemory(proc.pid)
        deadline = time.monotonic() + limits.timeout_s
        ticked = time.monotonic()
        while proc.poll() is None:
            if on_tick is not None and time.monotonic() - ticked >= TICK_S:
                ticked = time.monotonic()
                on_tick()
            rss = memory.sample()
            if limits.max_rss_bytes is not None and rss > limits.max_rss_bytes:
                memory_killed = True
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(WATCH_INTERVAL_S)
    finally:
        if proc is not None:
            with shielded():
                _stop(proc, pump)
    return LaunchResult(
        proc.returncode,
        timed_out,
        time.perf_counter() - start,
        memory.peak if memory else 0,
        memory_killed,
        pump.dropped if pump else 0,
    )


def _stop(proc: subprocess.Popen[bytes], pump: LogPump | None) -> None:
    """Stop the worker's group, then the log."""
    kill_group(proc)
    if pump is not None:
        pump.join(5.0)
    if proc.stdout is not None:
        proc.stdout.close()


def reap(workdir: Path) -> int:
    """Stop the processes of a worker whose `bench run` died without stopping it (kill -9): every process
    whose environment holds the worker's token. Returns how many were stopped."""
    try:
        identity = json.loads((workdir / IDENTITY_FILE).read_text(encoding="utf-8"))
        token = str(identity["token"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(TOKEN_VARIABLE) == token:
                found.append(proc)
    for proc in found:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(found, timeout=5.0)
    return len(found)


def log_tail(log_path: Path, limit: int = 4000) -> str:
    """The last `limit` bytes of a run's log, read from its end."""
    try:
        with log_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            data = fh.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")
