"""A compressor that does nothing, or injects the one fault its config names, in its compress phase.

The lifecycle tests install it and run suites whose rows pick the fault. With `once_marker`, the fault
happens only while that file does not exist (the plugin creates it first), so that the same suite passes
when it is run again: the shape of a resume after an interruption.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

from bench.core.compressor import CompressContext, Compressor
from bench.core.model import ModelHandle
from bench.core.settings import PluginConfig

Kind = Literal["none", "raise", "abort", "segfault", "hang", "stubborn", "child", "alloc", "flood", "exit0"]


class FaultConfig(PluginConfig):
    """Which fault to inject."""

    kind: Kind = "none"
    once_marker: str | None = None
    """A file: inject the fault only if it does not exist yet (it is created just before)."""
    alloc_gb: float = 4.0
    """kind=alloc: how much memory to touch, 100 MB at a time."""
    flood_mb: int = 40
    """kind=flood: how much output to write."""


class Fault(Compressor):
    """Injects one fault; with kind=none, returns the model unchanged."""

    name = "fault"
    description = "test only: injects a fault (raise, abort, segfault, hang, alloc, flood, exit0...)"
    Config = FaultConfig
    config: FaultConfig

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        marker = Path(self.config.once_marker) if self.config.once_marker else None
        if marker is not None and marker.exists():
            return model
        if marker is not None:
            marker.touch()
        print(f"fault plugin: injecting {self.config.kind} in pid {os.getpid()}", flush=True)
        inject(self.config)
        return model


def inject(config: FaultConfig) -> None:
    """Do the configured damage."""
    kind = config.kind
    if kind == "raise":
        raise RuntimeError("injected failure")
    if kind == "abort":
        os.abort()
    if kind == "segfault":
        ctypes.string_at(0)
    if kind == "exit0":
        os._exit(0)
    if kind == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if kind == "child":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        print(f"fault plugin: child pid {child.pid}", flush=True)
    if kind in ("hang", "stubborn", "child"):
        while True:
            time.sleep(0.1)
    if kind == "alloc":
        blocks = []
        for _ in range(int(config.alloc_gb * 10)):
            blocks.append(b"\x01" * 100_000_000)  # filled, so every page is resident
            time.sleep(0.05)
    if kind == "flood":
        line = ("x" * 1023 + "\n").encode()
        for _ in range(config.flood_mb * 1024):
            sys.stdout.buffer.write(line)
        sys.stdout.flush()
