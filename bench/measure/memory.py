"""Peak resident memory of a run's phases: sampled from a background thread, or read from the kernel's
high-water mark where a process may reset it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil


class RssSampler:
    """Samples this process's RSS every `interval_s` and keeps the peak of each named phase.

    Sampling misses spikes shorter than the interval; the process-wide high-water mark
    (`ru_maxrss`) is recorded beside it as an upper bound.
    """

    def __init__(self, interval_s: float = 0.01, between_phases: bool = True) -> None:
        self.interval_s = interval_s
        self.between_phases = between_phases
        """False: the thread sleeps outside phases (an idle serving process beside a timed one stays idle)."""
        self._in_phase = threading.Event()
        self.peaks: dict[str, int] = {}
        self.samples = 0
        self._process = psutil.Process()
        self._phase: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def current(self) -> int:
        """RSS now, in bytes."""
        return int(self._process.memory_info().rss)

    def _record(self) -> None:
        rss = self.current()
        with self._lock:
            self.samples += 1
            if self._phase is not None and rss > self.peaks.get(self._phase, 0):
                self.peaks[self._phase] = rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self.between_phases and not self._in_phase.wait(0.5):
                continue
            self._record()

    def start(self) -> RssSampler:
        """Begin sampling in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()

    def max_rss(self) -> int:
        """The process's lifetime peak."""
        return max_rss_bytes()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Attribute samples taken inside the block to `name`; samples at both edges too."""
        with self._lock:
            self._phase = name
        self._in_phase.set()
        self._record()
        try:
            yield
        finally:
            self._record()
            self._in_phase.clear()
            with self._lock:
                self._phase = None


class KernelPeaks:
    """Exact peak RSS of each named phase from the kernel's high-water mark (VmHWM), reset as a phase begins
    (`/proc/self/clear_refs`, Linux 4.0+): no thread wakes beside timed calls, and no spike between samples
    is missed. The same interface as RssSampler; `max_rss` keeps the lifetime peak across the resets."""

    RESET = "/proc/self/clear_refs"

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self._process = psutil.Process()
        self._lifetime = 0

    @classmethod
    def available(cls) -> bool:
        """Whether this system lets a process reset its own high-water mark."""
        try:
            with open(cls.RESET, "w", encoding="ascii") as reset:
                reset.write("5")
        except OSError:
            return False
        return True

    def start(self) -> KernelPeaks:
        return self

    def stop(self) -> None:
        self._lifetime = self.max_rss()

    def current(self) -> int:
        """RSS now, in bytes."""
        return int(self._process.memory_info().rss)

    def max_rss(self) -> int:
        """The peak since the process began, across the resets."""
        return max(self._lifetime, max_rss_bytes())

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """The block's peak, kept for `name` (the highest over its entries)."""
        self._lifetime = self.max_rss()
        with open(self.RESET, "w", encoding="ascii") as reset:
            reset.write("5")
        try:
            yield
        finally:
            peak = max_rss_bytes()
            self.peaks[name] = max(peak, self.peaks.get(name, 0))
            self._lifetime = max(self._lifetime, peak)


def max_rss_bytes() -> int:
    """The process's lifetime peak RSS, in bytes: Linux's VmHWM (this program's own high-water mark), else
    ru_maxrss. On Linux ru_maxrss survives fork and exec, so a small process started by a large one (a
    worker's serving process) would report its parent's peak."""
    import resource
    import sys

    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def release_freed_memory() -> None:
    """Return memory freed by Python and the C allocator to the OS, so that a later phase's RSS shows
    what that phase holds rather than what an earlier phase (training, export) left cached."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        trim = getattr(libc, "malloc_trim", None)
        if trim is not None:
            trim(0)
    except OSError:
        return
