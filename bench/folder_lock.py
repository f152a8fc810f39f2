"""One `bench run` at a time per results folder: two would share work folders, logs and record paths.

The lock is an advisory `flock` on `<folder>/.lock`, which the kernel releases when its holder dies, even by
kill -9; so a stale lock never blocks. The file also says who holds it, for the refusal message, and is
emptied on a clean exit: a lock file that still names a holder was left by a `bench run` that was killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from bench.core.errors import BenchError

LOCK_FILE = ".lock"


class FolderBusy(BenchError):
    """Another `bench run` holds the results folder."""


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}, since {info['since']}: {info['command']}"
    except (ValueError, KeyError, TypeError):
        return "unknown"


@contextmanager
def folder_lock(folder: Path) -> Iterator[str | None]:
    """Hold the folder's lock for the block. Yields who held it last without releasing it (a killed run),
    or None. Raises FolderBusy (one line) when a live `bench run` holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.pread(fd, 4096, 0).decode("utf-8", errors="replace"))
            raise FolderBusy(
                f"results folder {folder} is in use by another bench run ({holder}); wait for it to end, "
                "or stop it (a stopped run resumes where it was)"
            ) from None
        left = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
        mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:300],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        try:
            yield _holder(left) if left else None
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock
