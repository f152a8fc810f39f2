"""P1: bench's p50 against a bare `perf_counter` loop around the same calls.

For each served run of a results folder measured with BENCH_KEEP_WORK=1 in full mode (so that its work folder
holds the saved model, its serving recipe and the timing inputs), bench's serving process and a bare process
each load the saved model and time the same inputs, in the order A B B A B A (a drift of the machine reaches
both alike). The bare process uses the same loader and times what the serving process times (the call on
inputs staged beforehand, then the device synchronized) in a plain loop: 10 warm-up calls, then
`perf_counter` around each call for SECONDS. Prints each side's median of its three p50s.

    BENCH_KEEP_WORK=1 bench run suites/qa.yaml --only baseline --only int8-dynamic-ort --limit 50 \\
        --results-dir /tmp/p1
    python examples/bare_loop.py /tmp/p1/<machine>/qa [SECONDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.core.latency import LatencySettings
from bench.core.records import load_records
from bench.core.shape import Shape
from bench.serve.client import ServeProcess
from bench.serve.handoff import Handoff, pick_up

BARE = """
import statistics, sys, time
from pathlib import Path
from bench.serve.handoff import pick_up
from bench.serve.loaders import load
handoff = pick_up(Path(sys.argv[1]))
seconds = float(sys.argv[2])
model = load(handoff.recipe, handoff.saved)
pool = [model.stage(arrays) for arrays in handoff.pool]
for i in range(10):
    model.timed(pool[i % len(pool)])
model.synchronize()
samples = []
began = time.perf_counter()
i = 0
while time.perf_counter() - began < seconds:
    start = time.perf_counter()
    model.timed(pool[i % len(pool)])
    model.synchronize()
    samples.append((time.perf_counter() - start) * 1000)
    i += 1
print(statistics.median(samples))
"""
ORDER = "ABBABA"


def bench_p50(handoff: Handoff, seconds: float, shape: Shape) -> float:
    """bench's serving process: load, warm up, time for `seconds`; its p50 in ms."""
    settings = LatencySettings(warmup=10, min_iterations=10, min_duration_s=seconds, max_iterations=10**7,
                               max_duration_s=2 * seconds)  # fmt: skip
    with open(os.devnull, "wb") as quiet:
        server = ServeProcess(handoff.recipe, handoff.saved, quiet)
        try:
            return server.time(handoff.pool, settings, shape, handoff.scope).stats.p50
        finally:
            server.close()


def bare_p50(workdir: Path, seconds: float) -> float:
    """A bare process's p50 in ms."""
    done = subprocess.run([sys.executable, "-c", BARE, str(workdir), str(seconds)], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return float(done.stdout.split()[-1])


def main(folder: Path, seconds: float) -> int:
    """One line per served run: bench's and the bare loop's p50, and their difference."""
    print(f"{'row':24} {'runtime':12} {'bench p50':>10} {'bare p50':>10} {'diff':>7}   (medians of 3, order {ORDER})")
    for record in load_records([folder]).records:
        workdir = folder / ".work" / record.spec.key
        handoff = pick_up(workdir)
        if handoff is None:
            continue
        sides: dict[str, list[float]] = {"A": [], "B": []}
        for side in ORDER:
            value = bench_p50(handoff, seconds, record.spec.shape) if side == "A" else bare_p50(workdir, seconds)
            sides[side].append(value)
        ours, bare = statistics.median(sides["A"]), statistics.median(sides["B"])
        print(f"{record.spec.compressor.display_name:24} {handoff.recipe.runtime:12} {ours:8.2f}ms {bare:8.2f}ms "
              f"{100 * (ours - bare) / bare:+6.1f}%")  # fmt: skip
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        raise SystemExit(2)
    raise SystemExit(main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) == 3 else 5.0))
