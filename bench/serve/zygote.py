"""A preloaded parent for serving processes: `python -m bench.serve.zygote FD RUNTIME` imports one runtime's
modules once, then forks a fresh serving process for each socket it is sent (with the log to write to).

Interleaved rounds load every row again in a fresh process for each round; importing PyTorch and
transformers took most of a PyTorch row's 7-9 s load there, repeated every round. A forked child starts
with the runtime already imported but owns nothing else of its parent's: it loads the saved model itself, as
a fresh process does, and the threads it calls the model with are its own: the parent forks before any
session or compiled model exists, holding only the threads that importing starts (numpy's BLAS pool, which
its fork handler restarts in the child). CPU rows only: a CUDA context must not cross a fork. Not OpenVINO:
importing it starts a Python thread pool that imports on its own, and a child forked while it holds a
module's import lock waits for it forever (its loads take about a second anyway).

Its children are in its process group (it starts its own session), so that a child whose parent dies ends
its siblings and not the launcher's group.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection

from bench.core.job import PARENT_VARIABLE
from bench.orphan import die_with_parent
from bench.serve.loaders import RUNTIME_MODULES
from bench.serve.server import run

FORKABLE = frozenset({"pytorch", "onnxruntime"})
"""The runtimes whose imports leave no thread that could hold a lock across the fork."""
PID_BYTES = 8
"""A forked child's pid goes back to the client as this many bytes (little-endian)."""


def forking(conn: socket.socket) -> int:
    """Fork a serving process for each (socket, log) pair received, answering with its pid; return 0 when
    the client closes the connection. Returns only in the parent."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children: no zombies
    while True:
        message, fds, _, _ = socket.recv_fds(conn, 1, 2)
        if not message:
            return 0
        serving_fd, log_fd = fds
        pid = os.fork()
        if pid == 0:
            conn.close()
            os._exit(child(serving_fd, log_fd))
        os.close(serving_fd)
        os.close(log_fd)
        conn.sendall(pid.to_bytes(PID_BYTES, "little"))


def child(serving_fd: int, log_fd: int) -> int:
    """A forked serving process: its own log, default signal handling, and the serving loop."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    die_with_parent(os.getppid())
    return run(Connection(serving_fd))


def main(argv: list[str] | None = None) -> int:
    """Entry point: the socket's file descriptor and the runtime to import."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[0].isdigit() or args[1] not in FORKABLE:
        print(f"usage: python -m bench.serve.zygote FD {{{','.join(sorted(FORKABLE))}}}", file=sys.stderr)
        return 2
    parent = os.environ.get(PARENT_VARIABLE)
    die_with_parent(int(parent) if parent and parent.isdigit() else None)
    began = time.perf_counter()
    for module in RUNTIME_MODULES[args[1]]:
        importlib.import_module(module)
    print(f"zygote {os.getpid()}: {args[1]} imported in {time.perf_counter() - began:.1f} s", flush=True)
    with socket.socket(fileno=int(args[0])) as conn:
        return forking(conn)


if __name__ == "__main__":
    raise SystemExit(main())
