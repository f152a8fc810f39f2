"""P1: bench's timing loop against a bare `perf_counter` loop around the same calls.

For each served run of a results folder measured with BENCH_KEEP_WORK=1 in full mode (so that its work folder
holds the saved model, its serving recipe and the timing inputs), PROCESSES fresh processes each load the
saved model with bench's loader and time it alternately with bench's `measure_latency` (called as the
serving process calls it: the staged inputs, `timed`, then `synchronize`) and with a plain loop
(`perf_counter` around the same calls), SECONDS per window, in the order A B B A B A, so that a drift of the
machine reaches both alike. Both sides share each process: a process's own luck (where its memory and
threads landed) moves the same model's p50 by up to ±10% between fresh processes here, and would otherwise
be read as the instrument's overhead. Prints, per row, the median over processes of each side's median p50
and their difference, and the spread of that difference over the processes.

    BENCH_KEEP_WORK=1 bench run suites/qa.yaml --only baseline --only int8-dynamic-ort --limit 50 \\
        --results-dir /tmp/p1
    python examples/bare_loop.py /tmp/p1/<machine>/qa [SECONDS] [PROCESSES]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from bench.core.records import load_records
from bench.serve.handoff import pick_up

ORDER = "ABBABA"
ONE_PROCESS = """
import statistics, sys, time
from pathlib import Path
from bench.core.latency import LatencySettings, measure_latency
from bench.core.shape import Shape
from bench.serve.handoff import pick_up
from bench.serve.loaders import load
handoff = pick_up(Path(sys.argv[1]))
seconds, order = float(sys.argv[2]), sys.argv[3]
shape = Shape(batch_size=int(sys.argv[4]), sequence_length=int(sys.argv[5]))
model = load(handoff.recipe, handoff.saved)
pool = [model.stage(arrays) for arrays in handoff.pool]
settings = LatencySettings(warmup=10, min_iterations=10, min_duration_s=seconds, max_iterations=10**7,
                           max_duration_s=2 * seconds)

def bare():
    for i in range(10):
        model.timed(pool[i % len(pool)])
    model.synchronize()
    samples, i, began = [], 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        start = time.perf_counter()
        model.timed(pool[i % len(pool)])
        model.synchronize()
        samples.append((time.perf_counter() - start) * 1000)
        i += 1
    return statistics.median(samples)

for side in order:
    if side == "A":
        p50 = measure_latency(model.timed, pool, settings, shape, "p1", model.synchronize).stats.p50
    else:
        p50 = bare()
    print(side, p50, flush=True)
"""


def one_process(workdir: Path, seconds: float, batch: int, length: int) -> tuple[float, float]:
    """A fresh process's median p50 of bench's windows and of the bare loop's, in ms."""
    args = [str(workdir), str(seconds), ORDER, str(batch), str(length)]
    done = subprocess.run([sys.executable, "-c", ONE_PROCESS, *args], check=True, capture_output=True, text=True)
    sides: dict[str, list[float]] = {"A": [], "B": []}
    for line in done.stdout.splitlines():
        side, value = line.split()
        sides[side].append(float(value))
    return statistics.median(sides["A"]), statistics.median(sides["B"])


def main(folder: Path, seconds: float, processes: int) -> int:
    """One line per served run: bench's and the bare loop's p50, their difference and its spread."""
    print(f"{'row':24} {'runtime':12} {'bench p50':>10} {'bare p50':>10} {'diff':>7}  {'per process':>20}"
          f"   ({processes} processes, windows {ORDER} of {seconds:g} s)")  # fmt: skip
    for record in load_records([folder]).records:
        workdir = folder / ".work" / record.spec.key
        handoff = pick_up(workdir)
        if handoff is None:
            continue
        shape = record.spec.shape
        pairs = [one_process(workdir, seconds, shape.batch_size, shape.sequence_length) for _ in range(processes)]
        diffs = [100 * (ours - bare) / bare for ours, bare in pairs]
        ours, bare = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        each = " ".join(f"{d:+.1f}" for d in diffs)
        print(f"{record.spec.compressor.display_name:24} {handoff.recipe.runtime:12} {ours:8.2f}ms {bare:8.2f}ms "
              f"{100 * (ours - bare) / bare:+6.1f}%  {each:>20}")  # fmt: skip
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3, 4):
        print(__doc__)
        raise SystemExit(2)
    seconds = float(sys.argv[2]) if len(sys.argv) >= 3 else 5.0
    processes = int(sys.argv[3]) if len(sys.argv) == 4 else 3
    raise SystemExit(main(Path(sys.argv[1]), seconds, processes))
