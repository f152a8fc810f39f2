"""How much CPU other processes (and, on a VM, other guests: steal time) took while a phase ran:
timings taken on a busy machine say so."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

BUSY_THRESHOLD = 0.10
"""Share of the machine's CPU time used by other processes above which a measurement is flagged."""


@dataclass
class CpuContention:
    """Snapshot at the start of a phase; `share()` at its end."""

    wall: float
    busy: float
    own: float

    @classmethod
    def start(cls) -> CpuContention:
        """Take the snapshot."""
        return cls(time.perf_counter(), _busy_seconds(), _own_seconds())

    def share(self) -> float:
        """Fraction (0..1) of all cores' time that other processes used since the snapshot."""
        wall = time.perf_counter() - self.wall
        cores = psutil.cpu_count(logical=True) or 1
        if wall <= 0:
            return 0.0
        others = (_busy_seconds() - self.busy) - (_own_seconds() - self.own)
        return max(0.0, min(1.0, others / (wall * cores)))


def _busy_seconds() -> float:
    """CPU seconds the machine spent on any process, plus time a hypervisor gave to other guests (steal)."""
    t = psutil.cpu_times()
    parts = ("user", "system", "nice", "irq", "softirq", "steal")
    return float(sum(getattr(t, name, 0.0) for name in parts))


def _own_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for (the C++ compiler that
    torch.compile runs in a warm-up is the measured process's own work, not another process's)."""
    t = psutil.Process().cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)
