"""The serving process: `python -m bench.serve.server FD`, started by a run's worker with one end of a socket
pair. It imports the saved model's runtime and nothing heavier (no PyTorch, no transformers), loads the
model, times it, answers scoring calls, and reports its memory: what a deployment of the model needs."""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection

from bench.core.compilation import RecompileWatch
from bench.core.device_memory import DeviceMemory, DevicePhase, TorchCudaMemory
from bench.core.job import PARENT_VARIABLE
from bench.core.latency import CudaEventTimer, DeviceTimer, LatencySettings, measure_latency
from bench.measure.contention import CpuContention
from bench.measure.memory import KernelPeaks, RssSampler
from bench.orphan import die_with_parent
from bench.serve import loaders
from bench.serve.protocol import Failed, Finish, Forward, Load, Loaded, Peaks, Time


def serve(conn: Connection) -> None:
    """Answer the worker's requests until it says Finish (or goes away)."""
    sampler = memory_meter()
    rss_start = sampler.current()
    request = conn.recv()
    if not isinstance(request, Load):
        raise TypeError(f"the first request must be Load, got {type(request).__name__}")
    for module in loaders.RUNTIME_MODULES[request.recipe.runtime]:
        importlib.import_module(module)
    rss_runtime = sampler.current()
    began = time.perf_counter()
    with sampler.phase("load"):
        model = loaders.load(request.recipe, request.folder)
    load_s = time.perf_counter() - began
    torch_loaded = "torch" in sys.modules
    conn.send(Loaded(model.inputs, model.outputs, rss_start, rss_runtime, sampler.current(), load_s, torch_loaded))
    gpu = DeviceWatch(request.recipe.device)
    while True:
        request = conn.recv()
        if isinstance(request, Time):
            settings = LatencySettings(
                request.warmup,
                request.min_iterations,
                request.min_duration_s,
                request.max_iterations,
                request.max_duration_s,
            )
            staged = [model.stage(batch) for batch in request.pool]  # placed on the device before timing
            watch = RecompileWatch() if model.compiled else None
            if watch is not None:
                settings = dataclasses.replace(settings, timed_region=watch.region)
            contention = CpuContention.start()
            with sampler.phase("latency"), gpu.phase("latency"):
                result = measure_latency(
                    model.timed, staged, settings, request.shape, request.scope, model.synchronize, gpu.timer()
                )
            del staged
            facts = {"other_cpu_share": round(contention.share(), 4), "graphs_compiled": watch.built if watch else None}
            conn.send(result.model_copy(update=facts))
        elif isinstance(request, Forward):
            with sampler.phase("evaluate"), gpu.phase("evaluate"):
                outputs = model.call(request.batch)
            conn.send(outputs)
        elif isinstance(request, Finish):
            sampler.stop()
            max_rss = sampler.max_rss()
            conn.send(Peaks(sampler.peaks.get("latency"), sampler.peaks.get("evaluate"), max_rss, gpu.record()))
            return
        else:
            raise TypeError(f"unknown request {type(request).__name__}")


def memory_meter() -> KernelPeaks | RssSampler:
    """The kernel's exact peaks where it lets a process reset them (no thread beside the timed calls), else a
    sampler that sleeps outside phases (a held process idle beside other rows' timing wakes nobody)."""
    return KernelPeaks() if KernelPeaks.available() else RssSampler(between_phases=False).start()


class DeviceWatch:
    """The serving process's GPU memory per phase on a CUDA device (nothing on a CPU): peaks reset when a
    phase is first entered and kept across its later entries (every scoring call is one entry)."""

    def __init__(self, device: str) -> None:
        self.api: TorchCudaMemory | None = None
        self.memory: DeviceMemory | None = None
        if device.startswith("cuda"):
            self.api = TorchCudaMemory(device)
            self.memory = DeviceMemory(device=device, total_bytes=self.api.total(), source="torch.cuda")

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Attribute the device memory used inside the block to `name`."""
        if self.api is None or self.memory is None:
            yield
            return
        self.api.reset_peaks()
        try:
            yield
        finally:
            allocated, reserved = self.api.peaks()
            before = self.memory.phases.get(name)
            used = [u for u in (self.api.device_used(), before.device_used if before else None) if u is not None]
            if before is not None:
                allocated, reserved = max(allocated, before.allocated_peak), max(reserved, before.reserved_peak)
            self.memory.phases[name] = DevicePhase(
                allocated_peak=allocated, reserved_peak=reserved, device_used=max(used) if used else None
            )

    def timer(self) -> DeviceTimer | None:
        """CUDA events around each timed call, as the compressing process times a CUDA row."""
        return CudaEventTimer() if self.api is not None else None

    def record(self) -> DeviceMemory | None:
        """What it measured (None on a CPU)."""
        return self.memory


def main(argv: list[str] | None = None) -> int:
    """Entry point: the socket's file descriptor is the only argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m bench.serve.server FD", file=sys.stderr)
        return 2
    parent = os.environ.get(PARENT_VARIABLE)
    die_with_parent(int(parent) if parent and parent.isdigit() else None)
    return run(Connection(int(args[0])))


def run(conn: Connection) -> int:
    """Serve on `conn`; the exit status (every failure goes back to the worker as one message)."""
    try:
        serve(conn)
    except EOFError:
        return 1  # the worker went away
    except BaseException as exc:
        conn.send(Failed(f"{type(exc).__name__}: {exc}", traceback.format_exc()[-4000:]))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
