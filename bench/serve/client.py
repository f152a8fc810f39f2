"""The worker's side of the serve phase: start the serving process on the saved folder, and a ModelHandle
whose calls it answers (scoring) and whose timing it does itself (so no call crosses the socket while
timed)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import psutil

from bench.core.errors import BenchError
from bench.core.job import PARENT_VARIABLE
from bench.core.latency import LatencyResult, LatencySettings
from bench.core.model import Batch, ExecutedPrecision, ModelHandle
from bench.core.serving import ServeRecipe, Serving
from bench.core.shape import Shape
from bench.serve.protocol import Arrays, Failed, Finish, Forward, Load, Loaded, Peaks, Time
from bench.serve.zygote import PID_BYTES

LOAD_TIMEOUT_S = 600.0
"""How long loading the saved model may take before the serve phase fails."""
FORK_TIMEOUT_S = 60.0
"""How long a zygote may take to answer a fork."""


class ServeFailed(BenchError):
    """The saved model could not be loaded or run in a fresh process."""


class Child(Protocol):
    """A serving process as its client handles it: a started one (subprocess.Popen) or a forked one."""

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int | None: ...

    def kill(self) -> None: ...


class ForkedChild:
    """A serving process forked by a zygote: not this process's child, so its exit status is unknown."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.process: psutil.Process | None = psutil.Process(pid)
        except psutil.NoSuchProcess:
            self.process = None  # it has already ended

    def poll(self) -> int | None:
        """None while it runs, else -1 (ended, status unknown)."""
        try:
            running = self.process is not None and self.process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            running = False
        return None if running else -1

    def wait(self, timeout: float | None = None) -> int | None:
        if self.process is None:
            return None
        with contextlib.suppress(psutil.NoSuchProcess):
            self.process.wait(timeout)
        return None

    def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                self.process.kill()


class Zygote:
    """A preloaded parent for one runtime's CPU serving processes (bench.serve.zygote): each `fork` gives a
    fresh serving process that has not imported the runtime itself."""

    def __init__(self, runtime: str, log: IO[bytes] | None) -> None:
        self.runtime = runtime
        mine, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve.zygote", str(theirs.fileno()), runtime],
            pass_fds=(theirs.fileno(),),
            stdout=log,
            stderr=log,
            env={**os.environ, PARENT_VARIABLE: str(os.getpid())},
            start_new_session=True,  # its children end with it, never the launcher's group
        )
        theirs.close()
        self.conn = mine

    def fork(self, serving: socket.socket, log: IO[bytes] | None) -> ForkedChild:
        """A new serving process on `serving` (the child's end of a socket pair), writing to `log`."""
        output = log.fileno() if log is not None else os.open(os.devnull, os.O_WRONLY)
        try:
            socket.send_fds(self.conn, [b"f"], [serving.fileno(), output])
            self.conn.settimeout(FORK_TIMEOUT_S)
            answer = b""
            while len(answer) < PID_BYTES:
                part = self.conn.recv(PID_BYTES - len(answer))
                if not part:
                    break
                answer += part
        except OSError as exc:
            raise ServeFailed(f"the {self.runtime} zygote failed to fork a serving process: {exc}") from None
        finally:
            if log is None:
                os.close(output)
        if len(answer) < PID_BYTES:
            code = self.process.wait(timeout=30)
            raise ServeFailed(f"the {self.runtime} zygote exited (status {code}) before forking a serving process")
        return ForkedChild(int.from_bytes(answer, "little"))

    def close(self) -> None:
        """End it (it ends when its socket closes); its children have ended before."""
        self.conn.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


class ServeProcess:
    """A running serving process and the socket to it (forked by `zygote` when given, else started)."""

    def __init__(self, recipe: ServeRecipe, folder: Path, log: IO[bytes] | None, zygote: Zygote | None = None) -> None:
        mine, theirs = socket.socketpair()
        self.process: Child
        if zygote is not None:
            try:
                self.process = zygote.fork(theirs, log)
            finally:
                theirs.close()
        else:
            env = {**os.environ, PARENT_VARIABLE: str(os.getpid())}
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.serve.server", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdout=log,
                stderr=log,
                env=env,
            )
            theirs.close()
        self.conn = Connection(mine.detach())
        self.recipe = recipe
        try:
            self.loaded: Loaded = self._ask(Load(recipe, folder), LOAD_TIMEOUT_S, Loaded)
        except ServeFailed:
            self.close()  # a process that did not load (or hangs loading) is not left behind
            raise

    def _ask(self, request: object, timeout: float | None, expected: type[Any]) -> Any:
        try:
            self.conn.send(request)
            if timeout is not None and not self.conn.poll(timeout):
                raise ServeFailed(f"the serving process did not answer within {timeout:.0f} s")
            answer = self.conn.recv()
        except (EOFError, OSError) as exc:
            code = self.process.wait(timeout=5)
            status = "unknown" if code is None else code
            raise ServeFailed(f"the serving process exited (status {status}) before answering: {exc}") from None
        if isinstance(answer, Failed):
            raise ServeFailed(f"the saved model failed in a fresh {self.recipe.runtime} process: {answer.message}")
        if not isinstance(answer, expected):
            raise ServeFailed(f"the serving process answered {type(answer).__name__}, not {expected.__name__}")
        return answer

    def time(
        self, pool: list[Arrays], settings: LatencySettings, shape: Shape, scope: str, timeout: float | None = None
    ) -> LatencyResult:
        """Time the forward pass in the serving process (waiting at most `timeout` seconds for it)."""
        request = Time(
            pool,
            settings.warmup,
            settings.min_iterations,
            settings.min_duration_s,
            settings.max_iterations,
            settings.max_duration_s,
            shape,
            scope,
        )
        result: LatencyResult = self._ask(request, timeout, LatencyResult)
        return result

    def forward(self, batch: Arrays) -> Arrays:
        """One scoring call."""
        outputs: Arrays = self._ask(Forward(batch), None, dict)
        return outputs

    def finish(self) -> Serving:
        """End the process and return what it measured."""
        peaks: Peaks = self._ask(Finish(), 60.0, Peaks)
        self.process.wait(timeout=30)
        self.conn.close()
        loaded = self.loaded
        return Serving(
            where="fresh process",
            runtime=self.recipe.runtime,
            rss_start=loaded.rss_start,
            rss_runtime=loaded.rss_runtime,
            model_bytes=max(0, loaded.rss_loaded - loaded.rss_runtime),
            load_s=round(loaded.load_s, 4),
            timing_peak=peaks.timing,
            scoring_peak=peaks.scoring,
            max_rss=peaks.max_rss,
            device_memory=peaks.device,
            torch_loaded=loaded.torch_loaded,
        )

    def close(self) -> None:
        """Stop the process if it is still running (after a failure elsewhere)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.conn.close()


def to_arrays(batch: Mapping[str, Any], names: list[str]) -> Arrays:
    """The named inputs of a batch (no names: all its tensors) as numpy arrays."""
    chosen = names or [name for name, value in batch.items() if hasattr(value, "numpy")]
    return {name: np.ascontiguousarray(batch[name].cpu().numpy()) for name in chosen}


class ServedModel(ModelHandle):
    """The saved model as the serving process runs it; everything that is not a call is the compressing
    process's handle's (its census, executed precision and whether its rows are independent)."""

    stages_inputs = False

    def __init__(self, measured: ModelHandle, server: ServeProcess) -> None:
        super().__init__(measured.tokenizer, measured.device, measured.config)
        self.measured = measured
        self.server = server
        self.runtime = measured.runtime  # type: ignore[misc]
        self.save_format = measured.save_format
        self.compilation = measured.compilation  # compiled again, as it was, in the serving process

    def forward(self, batch: Batch) -> Mapping[str, Any]:
        import torch

        outputs = self.server.forward(to_arrays(batch, self.server.loaded.inputs))
        return {name: torch.from_numpy(value) for name, value in outputs.items()}

    def timing_inputs(self, pool: Sequence[Batch]) -> list[Arrays]:
        """The timing inputs as the serving process takes them."""
        return [to_arrays(batch, self.server.loaded.inputs) for batch in pool]

    def save(self, directory: Path) -> list[Path]:
        return self.measured.save(directory)

    def tensors(self) -> Iterator[tuple[str, Any]]:
        return self.measured.tensors()

    def operators(self) -> dict[str, int] | None:
        return self.measured.operators()

    def executed_precision(self) -> ExecutedPrecision | None:
        return self.measured.executed_precision()

    def rows_independent(self) -> bool:
        return self.measured.rows_independent()
