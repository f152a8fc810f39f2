"""P1: bench's timing loop against a bare `perf_counter` loop around the same calls.

For each served run of a results folder measured with BENCH_KEEP_WORK=1 in full mode (so that its work folder
holds the saved model, its serving recipe and the timing inputs), PROCESSES fresh processes each load the
saved model with bench's loader and time it alternately with bench's `measure_latency` (called as the
serving process calls it: the staged inputs, `timed`, then `synchronize`) and with a plain loop
(`perf_counter` around the same calls), in short windows of SECONDS in the order A B B A A B B A ... (PAIRS
of each), so that the machine's drift, which moves 5-second windows of the same loop by up to ±10% on a
shared VM, reaches both sides alike. Both sides share each process: a process's own luck (where its memory
and threads landed) would otherwise be read as the instrument's overhead. Each side's p50 is the median of
all its windows' samples. Prints, per row, the median over processes of each side's p50 and their
difference, and the difference in each process.

    BENCH_KEEP_WORK=1 bench run suites/qa.yaml --only baseline --only int8-dynamic-ort --limit 50 \\
        --results-dir /tmp/p1
    python examples/bare_loop.py /tmp/p1/<machine>/qa [SECONDS] [PROCESSES] [PAIRS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from bench.core.records import load_records
from bench.serve.handoff import pick_up

ONE_PROCESS = """
import statistics, sys, time
from pathlib import Path
from bench.core.latency import LatencySettings, measure_latency
from bench.core.shape import Shape
from bench.serve.handoff import pick_up
from bench.serve.loaders import load
handoff = pick_up(Path(sys.argv[1]))
seconds, pairs = float(sys.argv[2]), int(sys.argv[3])
shape = Shape(batch_size=int(sys.argv[4]), sequence_length=int(sys.argv[5]))
WARMUP = 2  # calls before each window, on both sides
model = load(handoff.recipe, handoff.saved)
pool = [model.stage(arrays) for arrays in handoff.pool]
settings = LatencySettings(warmup=WARMUP, min_iterations=1, min_duration_s=seconds, max_iterations=10**7,
                           max_duration_s=2 * seconds)

def bare():
    for i in range(WARMUP):
        model.timed(pool[i % len(pool)])
    model.synchronize()
    samples, i, began = [], 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        start = time.perf_counter()
        model.timed(pool[i % len(pool)])
        model.synchronize()
        samples.append((time.perf_counter() - start) * 1000)
        i += 1
    return samples

samples = {"A": [], "B": []}
for side in "ABBA" * (pairs // 2) + "AB" * (pairs % 2):
    if side == "A":
        samples["A"] += measure_latency(model.timed, pool, settings, shape, "p1", model.synchronize).samples_ms
    else:
        samples["B"] += bare()
print(statistics.median(samples["A"]), statistics.median(samples["B"]))
"""


def one_process(workdir: Path, seconds: float, pairs: int, batch: int, length: int) -> tuple[float, float]:
    """A fresh process's p50 of bench's windows and of the bare loop's, in ms."""
    args = [str(workdir), str(seconds), str(pairs), str(batch), str(length)]
    done = subprocess.run([sys.executable, "-c", ONE_PROCESS, *args], check=True, capture_output=True, text=True)
    ours, bare = done.stdout.split()[-2:]
    return float(ours), float(bare)


def main(folder: Path, seconds: float, processes: int, pairs: int) -> int:
    """One line per served run: bench's and the bare loop's p50, their difference and its spread."""
    print(f"{'row':24} {'runtime':12} {'bench p50':>10} {'bare p50':>10} {'diff':>7}  {'per process':>20}"
          f"   ({processes} processes, {pairs} windows of {seconds:g} s a side)")  # fmt: skip
    for record in load_records([folder]).records:
        workdir = folder / ".work" / record.spec.key
        handoff = pick_up(workdir)
        if handoff is None:
            continue
        shape = record.spec.shape
        size = (shape.batch_size, shape.sequence_length)
        found = [one_process(workdir, seconds, pairs, *size) for _ in range(processes)]
        diffs = [100 * (ours - bare) / bare for ours, bare in found]
        ours, bare = statistics.median(p[0] for p in found), statistics.median(p[1] for p in found)
        each = " ".join(f"{d:+.1f}" for d in diffs)
        print(f"{record.spec.compressor.display_name:24} {handoff.recipe.runtime:12} {ours:8.2f}ms {bare:8.2f}ms "
              f"{100 * (ours - bare) / bare:+6.1f}%  {each:>20}")  # fmt: skip
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in range(2, 6):
        print(__doc__)
        raise SystemExit(2)
    extra = sys.argv[2:] + [""] * 3
    seconds = float(extra[0] or 1.0)
    processes, pairs = int(extra[1] or 3), int(extra[2] or 20)
    raise SystemExit(main(Path(sys.argv[1]), seconds, processes, pairs))
