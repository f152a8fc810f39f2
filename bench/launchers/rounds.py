"""Interleaved rounds: after a group's runs, its served rows are timed again, each for a slice per round in an
order that rotates from round to round, so that a drift of the machine reaches every row alike (asv's
`rounds`). Their records then carry each round's samples, and a speed-up between two rows of one
interleaving is paired by round.

By default each row is loaded again in a fresh serving process for each round (the load is never timed):
a process's own luck (memory placement, kernel and thread choices) then varies between rounds, and the
intervals hold it. PyTorch and ONNX Runtime rows are forked for that from a parent that imported their
runtime once for the round (bench.serve.zygote), so a row's load is the model's, not the imports'. With
`fresh_rounds: false`, the rows' processes stay loaded side by side when the memory guard allows it. Runs in
the launcher's process, which imports no PyTorch: each serving process has its runtime alone, as in the run
itself.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import psutil

from bench.core.compilation import recompile_note
from bench.core.latency import LatencyResult
from bench.core.records import RunRecord, Status, save_record
from bench.core.serving import Interleaving, ServeRecipe, Serving
from bench.core.stats import summarize
from bench.measure.contention import BUSY_THRESHOLD
from bench.serve.client import ServeFailed, ServeProcess, Zygote
from bench.serve.handoff import Handoff, evict_from_page_cache, pick_up
from bench.serve.zygote import FORKABLE

SETTLE_S = 0.25
"""Pause before each slice, so that the previous row's runtime threads have stopped spinning."""
GUARD_SHARE = 0.5
"""The serving processes are held side by side when their high-water marks add up to at most this share of
the memory available when the rounds begin."""
SLICE_GRACE_S = 300.0
"""Beyond twice a slice's longest duration, how long a slice (its warm-up included) may take."""
T = TypeVar("T")
TIMED = "forward"
"""The latency entry a served run times (its only one)."""


@dataclass(eq=False)
class Contender:
    """One served row in the rounds."""

    record: RunRecord
    handoff: Handoff
    log: IO[bytes]
    server: ServeProcess | None = None
    slices: list[LatencyResult] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    timing_peak: int = 0
    busy_s: float = 0.0
    failure: str | None = None

    @property
    def key(self) -> str:
        return self.record.spec.key

    def serve(self, zygotes: Zygotes) -> ServeProcess:
        """Its serving process, loaded now when it is not held (the load is not timed)."""
        if self.server is None:
            evict_from_page_cache(self.handoff.saved)  # its files' pages are drawn again, as its process is
            began = time.perf_counter()
            zygote = zygotes.get(self.handoff.recipe)
            self.server = ServeProcess(self.handoff.recipe, self.handoff.saved, self.log, zygote)
            self.loads.append(round(time.perf_counter() - began, 4))
        return self.server

    def close(self) -> None:
        """Stop its serving process, if one is still running."""
        if self.server is not None:
            self.server.close()
            self.server = None

    def release(self) -> None:
        """End its serving process, keeping its memory peak."""
        if self.server is None:
            return
        server, self.server = self.server, None
        try:
            serving = server.finish()
            self.timing_peak = max(self.timing_peak, serving.timing_peak or 0)
        finally:
            server.close()


class Zygotes:
    """One preloaded parent per runtime for one round, started when a row of it is first loaded, which forks
    that row's fresh process (bench.serve.zygote): PyTorch rows then import torch and transformers once per
    round, not once per row. A new parent each round, because a fork keeps its parent's address-space
    layout (no new ASLR draw) and heap: children of one parent for every round ran the fp32 baseline at
    ~80 ms in one run and ~120 ms in the next, each run's rounds agreeing with each other, which froze a
    process's luck out of the interval as held processes do. Rows held side by side load once and need
    none."""

    def __init__(self, folder: Path, enabled: bool) -> None:
        self.folder, self.enabled = folder, enabled
        self.stack = contextlib.ExitStack()
        self.started: dict[str, Zygote] = {}

    def __enter__(self) -> Zygotes:
        return self

    def __exit__(self, *_: object) -> None:
        self.stack.close()

    def get(self, recipe: ServeRecipe) -> Zygote | None:
        """The zygote for a CPU row of a runtime that forks safely (None otherwise)."""
        if not self.enabled or recipe.device != "cpu" or recipe.runtime not in FORKABLE:
            return None
        if recipe.runtime not in self.started:
            log = self.stack.enter_context((self.folder / ".logs" / f"rounds-zygote-{recipe.runtime}.log").open("ab"))
            zygote = Zygote(recipe.runtime, log)
            self.stack.callback(zygote.close)
            self.started[recipe.runtime] = zygote
        return self.started[recipe.runtime]


def memory_guard(contenders: list[Contender]) -> tuple[bool, str]:
    """Whether the serving processes may stay loaded side by side, and the decision in words."""
    need = sum(peak_of(c.record) for c in contenders)
    available = psutil.virtual_memory().available
    held = need <= GUARD_SHARE * available
    verdict = "held side by side" if held else "loaded again for each slice"
    return held, (
        f"{verdict}: their serving processes' high-water marks add up to {need / 1e6:,.0f} MB, "
        f"{'within' if held else 'beyond'} {100 * GUARD_SHARE:.0f}% of the {available / 1e6:,.0f} MB available"
    )


def peak_of(record: RunRecord) -> int:
    """The memory a row's serving process reached in its run."""
    serving = record.serving
    return (serving.max_rss if serving else None) or (record.memory.steady_peak if record.memory else None) or 0


def rotated(rows: list[T], round_index: int) -> list[T]:
    """The order of round `round_index`: the plan order, started `round_index` places further on."""
    shift = round_index % len(rows)
    return rows[shift:] + rows[:shift]


def interleave(records: list[RunRecord], folder: Path, say: Callable[[str], None] = lambda _: None) -> list[RunRecord]:
    """Time the served rows among `records` (those whose work folder holds a handoff) in interleaved rounds,
    store their records again with the rounds, and return `records` with those replaced."""
    with contextlib.ExitStack() as stack:
        contenders = list(gather(records, folder, stack))
        if not contenders:
            return records
        measurement = contenders[0].record.spec.measurement
        if measurement.fresh_rounds:  # no process is held, so there is no memory to guard
            held, guard = False, "loaded again in a fresh process for each round (measurement.fresh_rounds)"
        else:
            held, guard = memory_guard(contenders)
        say(
            f"interleaved rounds: {len(contenders)} served row(s), {measurement.rounds} rounds of "
            f"{measurement.round_s:g} s each; {guard.split(':')[0]}"
        )
        for contender in contenders:  # whatever happens in the rounds, no serving process is left behind
            stack.callback(contender.close)
        for round_index in range(measurement.rounds):
            with Zygotes(folder, enabled=not held) as zygotes:
                for position, contender in enumerate(rotated(contenders, round_index)):
                    if contender.failure is None:
                        time_slice(contender, zygotes, position, round_index == 0, held)
        session = uuid.uuid4().hex[:12]
        finished = {c.key: finish(c, contenders, Decision(session, held, guard), folder) for c in contenders}
    return [finished.get(r.spec.key, r) for r in records]


def gather(records: list[RunRecord], folder: Path, stack: contextlib.ExitStack) -> Iterator[Contender]:
    """The rows that can take part: ok, served, with their handoff in the work folder."""
    for record in records:
        if record.status != Status.OK or TIMED not in record.latency:
            continue
        handoff = pick_up(folder / ".work" / record.spec.key)
        if handoff is None:
            continue
        log_path = folder / ".logs" / f"{record.spec.key}.rounds.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        yield Contender(record, handoff, stack.enter_context(log_path.open("ab")))


def time_slice(contender: Contender, zygotes: Zygotes, position: int, first: bool, held: bool) -> None:
    """Time one row's slice of a round (loading it first when it is not held); a failure drops the row from
    the rounds, keeping what its run measured."""
    spec = contender.record.spec
    began = time.perf_counter()
    try:
        server = contender.serve(zygotes)
        time.sleep(SETTLE_S)
        settings = spec.measurement.slice_settings(first=first or not held)
        timeout = SLICE_GRACE_S + 2 * settings.max_duration_s  # a wedged serving process fails its row
        result = server.time(contender.handoff.pool, settings, spec.shape, contender.handoff.scope, timeout)
        contender.slices.append(result)
        contender.positions.append(position)
        if not held:
            contender.release()
    except ServeFailed as exc:
        contender.failure = str(exc)
        with contextlib.suppress(ServeFailed, OSError):
            contender.release()
    finally:
        contender.busy_s += time.perf_counter() - began


@dataclass(frozen=True)
class Decision:
    """What every row of one interleaving shares: its name and the memory guard's decision."""

    session: str
    held: bool
    guard: str


def finish(contender: Contender, everyone: list[Contender], decision: Decision, folder: Path) -> RunRecord:
    """The row's record with its rounds (or, after a failure, a note saying why its figures are its run's
    own window), stored again."""
    contender.release()
    record = contender.record.model_copy(deep=True)
    record.phases_s["rounds"] = round(contender.busy_s, 3)
    record.wall_s += contender.busy_s
    if contender.failure is not None:
        record.notes.append(
            f"interleaved rounds failed for this row ({contender.failure}): its latency is the single window "
            "of its run, not interleaved with the other rows"
        )
        save_record(record, folder)
        return record
    first = record.latency[TIMED]
    members = [c for c in everyone if c.failure is None]
    samples = [x for s in contender.slices for x in s.samples_ms]
    stats = summarize(samples)
    shares = [s.other_cpu_share or 0.0 for s in contender.slices]
    graphs = [s.graphs_compiled for s in contender.slices if s.graphs_compiled is not None]
    measurement = record.spec.measurement
    record.latency[TIMED] = first.model_copy(
        update={
            "samples_ms": samples,
            "rounds_ms": [s.samples_ms for s in contender.slices],
            "stats": stats,
            "measured_s": round(sum(s.measured_s for s in contender.slices), 4),
            "throughput_samples_per_s": 1000.0 * record.spec.batch_size / stats.mean if stats.mean > 0 else 0.0,
            "other_cpu_share": max(shares),
            "graphs_compiled": sum(graphs) if graphs else None,
            "scope": f"{first.scope}; {measurement.rounds} interleaved rounds with {len(members) - 1} other row(s)",
        }
    )
    record.interleaving = Interleaving(
        session=decision.session,
        members=[c.key for c in members],
        rounds=measurement.rounds,
        slice_s=measurement.round_s,
        positions=contender.positions,
        held=decision.held,
        guard=decision.guard,
        first_window_ms=first.samples_ms,
        other_cpu_share=shares,
        load_s=contender.loads,
    )
    if graphs and record.execution is not None:
        record.execution = record.execution.model_copy(update={"graphs_compiled_while_timing": sum(graphs)})
        if sum(graphs):
            record.notes.append(recompile_note(sum(graphs)))
    if max(shares) > BUSY_THRESHOLD:
        record.notes.append(
            f"other processes used up to {100 * max(shares):.0f}% of the CPU during this row's interleaved "
            "slices: these timings are unreliable"
        )
    record.serving = with_timing_peak(record.serving, contender.timing_peak)
    if record.memory is not None and record.serving is not None:
        peaks = record.serving.steady_peaks()
        record.memory.steady_peak = max(peaks) if peaks else record.memory.steady_peak
    save_record(record, folder)
    return record


def with_timing_peak(serving: Serving | None, peak: int) -> Serving | None:
    """The serving part with the rounds' timing peak, when it is higher than the run's."""
    if serving is None or peak <= (serving.timing_peak or 0):
        return serving
    return serving.model_copy(update={"timing_peak": peak})
