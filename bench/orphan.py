"""A worker must not outlive its `bench run`: nothing else would enforce its timeout or memory limit.

SIGTERM makes a worker kill its whole process group (itself and anything it started). On Linux the kernel
sends that SIGTERM when the parent dies (the parent-death signal); elsewhere a watchdog thread notices that
the parent is gone and does the same. A worker stuck in native code that holds the GIL obeys neither: the
launcher escalates to SIGKILL when it is alive, and the next `bench run` in the folder finds and stops what
is left by its token (bench.launchers.watchdog.reap).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from types import FrameType

PR_SET_PDEATHSIG = 1
POLL_S = 0.5


def _set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send `sig` to this process when its parent thread exits."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _kill_own_group() -> None:
    try:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    finally:
        os._exit(137)


def _watch(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            _kill_own_group()
        threading.Event().wait(POLL_S)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    _kill_own_group()


def die_with_parent(parent: int | None) -> None:
    """Make SIGTERM end this process's group, and this process end when `parent` (the launcher's pid) does;
    if it already has, end now. Call before faulthandler.register(SIGTERM, chain=True), which then writes
    the stack to the log first."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    if parent is None:
        return
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the death signal was set
        _kill_own_group()
    threading.Thread(target=_watch, args=(parent,), name="parent-watchdog", daemon=True).start()
