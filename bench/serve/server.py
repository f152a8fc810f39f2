"""The serving process: `python -m bench.serve.server FD`, started by a run's worker with one end of a socket
pair. It imports the saved model's runtime and nothing heavier (no PyTorch, no transformers), loads the
model, times it, answers scoring calls, and reports its memory: what a deployment of the model needs."""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback
from multiprocessing.connection import Connection

from bench.core.job import PARENT_VARIABLE
from bench.core.latency import LatencySettings, measure_latency
from bench.measure.contention import CpuContention
from bench.measure.memory import RssSampler, max_rss_bytes
from bench.orphan import die_with_parent
from bench.serve import loaders
from bench.serve.protocol import Failed, Finish, Forward, Load, Loaded, Peaks, Time


def serve(conn: Connection) -> None:
    """Answer the worker's requests until it says Finish (or goes away)."""
    sampler = RssSampler().start()
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
            contention = CpuContention.start()
            with sampler.phase("latency"):
                result = measure_latency(model.call, request.pool, settings, request.shape, request.scope)
            conn.send(result.model_copy(update={"other_cpu_share": round(contention.share(), 4)}))
        elif isinstance(request, Forward):
            with sampler.phase("evaluate"):
                outputs = model.call(request.batch)
            conn.send(outputs)
        elif isinstance(request, Finish):
            sampler.stop()
            max_rss = max_rss_bytes()
            conn.send(Peaks(sampler.peaks.get("latency"), sampler.peaks.get("evaluate"), max_rss))
            return
        else:
            raise TypeError(f"unknown request {type(request).__name__}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: the socket's file descriptor is the only argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m bench.serve.server FD", file=sys.stderr)
        return 2
    parent = os.environ.get(PARENT_VARIABLE)
    die_with_parent(int(parent) if parent and parent.isdigit() else None)
    conn = Connection(int(args[0]))
    try:
        serve(conn)
    except EOFError:
        return 1  # the worker went away
    except BaseException as exc:  # every failure goes back to the worker as one message
        conn.send(Failed(f"{type(exc).__name__}: {exc}", traceback.format_exc()[-4000:]))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
