"""The `ray` launcher: a suite's runs spread over a Ray cluster, one measurement per node at a time.

The shared sequence (bench.launchers.sequence) plans, locks, selects and reuses; this launcher decides where
each pending run executes. Each group's baseline is submitted first; its predictions reach the group's
compressed runs as a Ray object (never through a shared filesystem), and those runs are held to nodes of the
baseline's hardware class. The driver stores every record, predictions file and log in
results/<machine>/<suite>/, where <machine> is the node that measured the run.

With interleaved rounds (`measurement.rounds` > 1), a group's runs are held to the node that measured its
baseline, and once all of them are home one more task there times its served rows in rounds, holding the
node's bench slot; the driver stores the records it sends back.
"""

from __future__ import annotations

import contextlib
import heapq
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bench import __version__
from bench.core.environment import Environment
from bench.core.launcher import ResolvedSuite
from bench.core.records import (
    LOG_SUFFIX,
    PREDICTIONS_SUFFIX,
    ErrorInfo,
    Placement,
    RunRecord,
    Status,
    atomic_write_text,
    record_path,
    save_record,
    stored_record,
    supersede,
)
from bench.core.spec import RunSpec
from bench.interrupts import Interrupted, deferred, shielded
from bench.launchers.board import RunBoard
from bench.launchers.ray_cluster import SLOT, cluster_threads, connected, first_line, preflight, slot_nodes
from bench.launchers.ray_node import NodeFacts, NodeRun, interleave_here, measure
from bench.launchers.sequence import Pending, Site, SuiteLauncher
from bench.report.text import for_console

if TYPE_CHECKING:
    from ray import ObjectRef

NODE_LABEL = "ray.io/node-id"
POLL_S = 0.5
NODE_CHECK_S = 5.0
CANCEL_GRACE_S = 30.0
NODE_LOST = ("NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "OwnerDiedError")
"""Ray's errors for a task whose node (or its worker) died."""


@dataclass
class Flight:
    """A submitted run."""

    spec: RunSpec
    predictions: Any
    """The ObjectRef of its predictions file (None for a run that never reached a node)."""
    nodes: tuple[str, ...]
    """The node ids it may run on."""
    submitted: float
    node: str | None = None
    """The Ray id of the node it started on, once it said so."""
    started: float | None = None
    """The node's clock when it began the run, once it said so."""
    stranded: bool = False
    """Cancelled by the driver because every node it may run on is gone."""


@dataclass(order=True)
class Ready:
    """A run ready to submit; baselines sort first, then plan order."""

    rank: tuple[int, int]
    spec: RunSpec = field(compare=False)
    baseline: Any = field(compare=False, default=None)
    """The baseline's predictions: an ObjectRef, or None when there are none."""
    nodes: tuple[str, ...] = field(compare=False, default=())
    """The node ids it may run on."""


class RayLauncher(SuiteLauncher):
    """Spreads the runs over a Ray cluster's bench slots; the driver stores every record."""

    name = "ray"
    description = "a Ray cluster: one run per node at a time, records stored by the driver (pip install 'bench[ray]')"

    @contextlib.contextmanager
    def site(self, resolved: ResolvedSuite, console: Console) -> Iterator[Site]:
        with connected(self.options.address, console) as ray:
            nodes = preflight(ray, resolved, console)
            console.print(
                f"  [dim]ray: {len(nodes)} node(s) with a bench slot: "
                f"{for_console(', '.join(n.name for n in nodes))}[/dim]",
                highlight=False,
            )
            self.ray, self.nodes = ray, nodes
            machines: dict[str, Environment] = {}
            for node in nodes:  # the first node of each machine decides whether its stored records still hold
                machines.setdefault(node.machine, node.environment)
            yield Site(machines, cluster_threads(resolved, nodes))

    def execute(self, pending: Pending, board: RunBoard, console: Console) -> list[RunRecord]:
        dispatch = Dispatch(self.ray, self.options.max_parallel, self.options.gpu_runs_per_node, self.nodes)
        return dispatch.run(pending, Homecoming(self.ray, dispatch.nodes, pending, board))


def interleaved(spec: RunSpec) -> bool:
    """Whether the run's group is timed again in interleaved rounds (its runs then go to one node)."""
    return spec.measurement.rounds > 1


class HardwareClasses:
    """The cluster's nodes grouped by hardware: a group's runs are held to the class that measured its
    baseline, so that rows of one table are measured alike."""

    def __init__(self, nodes: dict[str, NodeFacts]) -> None:
        self.nodes = nodes
        self.classes: dict[tuple[str, int | None, tuple[str, ...]], tuple[str, ...]] = {}
        for n in nodes.values():
            self.classes[n.hardware] = (*self.classes.get(n.hardware, ()), n.node_id)

    def of(self, record: RunRecord | None) -> tuple[str, ...]:
        """The node ids of the hardware class that measured `record` (every node when there is one class, no
        record, or the class is gone)."""
        everyone = tuple(self.nodes)
        if len(self.classes) == 1 or record is None:
            return everyone
        if record.placement is not None and record.placement.node_id in self.nodes:
            return self.classes[self.nodes[record.placement.node_id].hardware]
        env = record.environment
        for key, ids in self.classes.items():
            if env is not None and key[:2] == (env.cpu_model, env.logical_cores):
                return ids
        return everyone


class Homecoming:
    """What the driver does with a run that ended: store what its node sent back (or a record of how it was
    lost) in the folder of the machine that measured it, and show it on the board."""

    def __init__(self, ray: Any, nodes: dict[str, NodeFacts], pending: Pending, board: RunBoard) -> None:
        self.ray, self.nodes, self.pending, self.board = ray, nodes, pending, board

    def arrive(self, ref: ObjectRef, flight: Flight) -> RunRecord:
        """Store what the node sent back, or an error record naming the node and why the task failed."""
        predictions: bytes | None = None
        log = b""
        try:
            node_run: NodeRun = self.ray.get(ref)
            record, log = node_run.record, node_run.log
            if record.status == Status.OK:
                predictions = self.ray.get(flight.predictions)
        except Exception as exc:
            record = self.lost(flight, exc)
        self.store(record, predictions, log)
        node = self.nodes.get(record.placement.node_id) if record.placement else None
        self.board.finished(record, node.name if node else None)
        return record

    def stranded(self, flight: Flight) -> RunRecord:
        """Store and show the record of a run that never started because its nodes are gone."""
        record = self.lost(flight, RuntimeError("its nodes are gone"))
        self.store(record, None, b"")
        self.board.finished(record)
        return record

    def lost(self, flight: Flight, exc: BaseException) -> RunRecord:
        """The record of a run whose Ray task failed: the node died, the task was cancelled, or the node could
        not run bench's code at all."""
        node = self.nodes.get(flight.node or "")
        where = f"on node {node.name}" if node else "before it started on a node"
        kind = type(exc).__name__
        message = f"the Ray task {where} failed: {kind}: {first_line(exc)}"
        if flight.stranded:
            message = f"no node it may run on is left in the cluster (all of {len(flight.nodes)} are gone)"
        elif kind in NODE_LOST:
            message = f"the node {node.name if node else '?'} (or its Ray worker) died during the run: {kind}"
        elif kind == "TaskCancelledError":
            message = f"the Ray task was cancelled {where}"
        finished = time.time()
        facts = node or next(iter(self.nodes.values()))
        stamp = datetime.fromtimestamp
        placement = None
        if node is not None:
            started = flight.started or flight.submitted
            placement = Placement(
                launcher="ray",
                node_id=node.node_id,
                node_address=node.address,
                started_unix=started,
                finished_unix=finished,
            )
        return RunRecord(
            status=Status.ERROR,
            spec=flight.spec,
            machine=facts.machine,
            bench_version=__version__,
            started_at=stamp(flight.submitted, timezone.utc).isoformat(timespec="seconds"),
            finished_at=stamp(finished, timezone.utc).isoformat(timespec="seconds"),
            wall_s=finished - flight.submitted,
            environment=facts.environment,
            error=ErrorInfo(type="node", message=message, traceback_tail=str(exc)[-4000:]),
            placement=placement,
        )

    def store(self, record: RunRecord, predictions: bytes | None, log: bytes) -> None:
        """Write the run's predictions, log and record into its machine's folder, the record last."""
        folder = self.pending.folder(record.machine)
        key = record.spec.key
        supersede(folder, key, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"))
        if predictions is not None:
            atomic_write_text(folder / f"{key}{PREDICTIONS_SUFFIX}", predictions.decode("utf-8"))
        if log:
            log_path = folder / ".logs" / f"{key}{LOG_SUFFIX}"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_bytes(log)
            if record.error is not None and record.error.log is not None:
                record.error.log = str(log_path)
        save_record(record, folder)


class Dispatch:
    """Submits the pending runs (baselines first, each group's runs once its baseline is home) under the
    parallelism limit, and hands each one that ends to the Homecoming."""

    def __init__(self, ray: Any, max_parallel: int | None, gpu_runs_per_node: int, nodes: list[NodeFacts]) -> None:
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray, self.max_parallel, self.gpu_runs_per_node = ray, max_parallel, gpu_runs_per_node
        self.nodes = {n.node_id: n for n in nodes}
        self.hardware = HardwareClasses(self.nodes)
        here = ray.get_runtime_context().get_node_id()
        self.events = Queue(
            actor_options={"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=True)}
        )
        self.remote = ray.remote(measure)
        self.remote_rounds = ray.remote(interleave_here)
        self.rounds: dict[ObjectRef, str] = {}
        """Interleaved rounds in flight: the group each times."""
        self.unfinished: dict[str, int] = {}
        """Per interleaved group: how many of its runs have not come home yet."""
        self.home_records: dict[str, list[RunRecord]] = {}
        self.ready: list[Ready] = []
        self.waiting: dict[str, list[Ready]] = {}
        self.flights: dict[ObjectRef, Flight] = {}
        self.gpus = any(n.environment.gpus for n in nodes)

    def run(self, pending: Pending, home: Homecoming) -> list[RunRecord]:
        """Queue every pending run and drive them to the end; on any exception, cancel what is in flight."""
        self.pending, self.home = pending, home
        waiting_groups = {s.group for s in pending.runs if s.is_baseline}
        for spec in pending.runs:
            if interleaved(spec):
                self.unfinished[spec.group] = self.unfinished.get(spec.group, 0) + 1
        for index, spec in enumerate(pending.runs):
            if spec.is_baseline:
                heapq.heappush(self.ready, Ready((0, index), spec, nodes=tuple(self.nodes)))
            elif spec.group in waiting_groups:
                self.waiting.setdefault(spec.group, []).append(Ready((1, index), spec))
            else:
                record = self.baseline_record(pending.baselines.get(spec.group))
                ref = self.stored_predictions(record)
                nodes = self.hardware.of(record)
                heapq.heappush(self.ready, Ready((1, index), spec, ref, nodes[:1] if interleaved(spec) else nodes))
        try:
            return self.drive()
        except BaseException:
            with shielded(), contextlib.suppress(Exception):
                self.cancel()
            raise

    def baseline_record(self, key: str | None) -> RunRecord | None:
        """The stored record of a group's baseline that is not measured now (reused, or left out by --only)."""
        if key is None:
            return None
        if key in self.pending.reused:
            return self.pending.reused[key]
        for machine in sorted({n.machine for n in self.nodes.values()}):
            record = stored_record(record_path(self.pending.folder(machine), key))
            if record is not None:
                return record
        return None

    def stored_predictions(self, record: RunRecord | None) -> Any:
        """The stored predictions of a baseline record, put into the object store (None without them)."""
        if record is None:
            return None
        path = self.pending.folder(record.machine) / f"{record.spec.key}{PREDICTIONS_SUFFIX}"
        return self.ray.put(path.read_bytes()) if path.is_file() else None

    def submit(self, item: Ready) -> None:
        spec = item.spec
        cuda = spec.device.is_cuda and self.gpus
        resources = {SLOT: 1.0 / self.gpu_runs_per_node if cuda else 1.0}
        options: dict[str, Any] = {
            "num_returns": 2,
            "max_retries": 0,
            "num_cpus": 0 if cuda else 1,
            "num_gpus": 1 if cuda else 0,
            "resources": resources,
            "name": f"bench {spec.compressor.display_name} {spec.key[:8]}",
            "label_selector": {NODE_LABEL: f"in({','.join(item.nodes)})"},
        }
        baseline_key = self.pending.baseline_of(spec)
        run_ref, predictions_ref = self.remote.options(**options).remote(
            spec, baseline_key, item.baseline, self.events, interleaved(spec)
        )
        self.flights[run_ref] = Flight(spec, predictions_ref, item.nodes, time.time())

    def drive(self) -> list[RunRecord]:
        """Submit while under --max-parallel, store each run as it ends, release groups as baselines end."""
        records: list[RunRecord] = []
        limit = self.max_parallel or float("inf")
        checked = time.monotonic()
        with deferred() as signals:
            while self.ready or self.flights or self.rounds:
                if signals:
                    raise Interrupted(signals[0])
                records += self.step(limit)
                if time.monotonic() - checked > NODE_CHECK_S:
                    checked = time.monotonic()
                    records += self.check_nodes()
        return records

    def step(self, limit: float) -> list[RunRecord]:
        """Submit what fits, wait a moment for one run to end, and store those that did."""
        records: list[RunRecord] = []
        while self.ready and len(self.flights) < limit:
            self.submit(heapq.heappop(self.ready))
        done, _ = self.ray.wait([*self.flights, *self.rounds], num_returns=1, timeout=POLL_S)
        self.read_events()
        for ref in done:
            if ref in self.rounds:
                records += self.rounds_home(ref)
                continue
            flight = self.flights.pop(ref)
            record = self.home.arrive(ref, flight)
            records.append(record)
            if flight.spec.is_baseline:
                self.release(flight, record)
            if interleaved(flight.spec):
                self.group_home(record)
        return records

    def group_home(self, record: RunRecord) -> None:
        """A run of an interleaved group came home: when it is the group's last, time the group's served
        runs in interleaved rounds on the node that measured them (holding its bench slot)."""
        group = record.spec.group
        self.home_records.setdefault(group, []).append(record)
        self.unfinished[group] -= 1
        if self.unfinished[group] > 0:
            return
        placed = [r.placement.node_id for r in self.home_records[group] if r.placement and r.status == Status.OK]
        if not placed:
            return
        node = max(set(placed), key=placed.count)
        options: dict[str, Any] = {
            "max_retries": 0,
            "num_cpus": 1,
            "resources": {SLOT: 1.0},
            "name": f"bench rounds {group[:8]}",
            "label_selector": {NODE_LABEL: f"in({node})"},
        }
        members = [r for r in self.home_records.pop(group) if r.placement and r.placement.node_id == node]
        self.rounds[self.remote_rounds.options(**options).remote(members, group)] = group
        name = self.nodes[node].name if node in self.nodes else node[:8]
        self.home.board.say(f"interleaved rounds of {len(members)} run(s) on {name}")

    def rounds_home(self, ref: ObjectRef) -> list[RunRecord]:
        """Store the records a group's interleaved rounds sent back (its runs' own stay when they failed)."""
        group = self.rounds.pop(ref)
        try:
            records: list[RunRecord] = self.ray.get(ref)
        except Exception as exc:
            self.home.board.say(f"interleaved rounds of group {group[:8]} failed: {first_line(exc)}")
            return []
        for record in records:
            save_record(record, self.pending.folder(record.machine))
        return records

    def read_events(self) -> None:
        with contextlib.suppress(Exception):
            for kind, key, node_id, started in self.events.get_nowait_batch(self.events.qsize()):
                for flight in self.flights.values():
                    if kind == "started" and flight.spec.key == key:
                        flight.node, flight.started = node_id, started
                        node = self.nodes.get(node_id)
                        self.home.board.started(flight.spec, node.name if node else node_id[:8])

    def release(self, flight: Flight, record: RunRecord) -> None:
        """A baseline came home: its group's runs become ready, held to its hardware class."""
        nodes = self.hardware.of(record)
        if interleaved(flight.spec) and record.placement is not None:  # a group's rounds run on one node
            nodes = (record.placement.node_id,)
        predictions = flight.predictions if record.status == Status.OK else None
        for item in self.waiting.pop(flight.spec.group, []):
            heapq.heappush(self.ready, Ready(item.rank, item.spec, predictions, nodes))

    def check_nodes(self) -> list[RunRecord]:
        """Runs held to nodes that are all gone can never start: cancel those in flight (they come home as
        cancelled) and store an error record for those not submitted yet."""
        alive = {n["NodeID"] for n in slot_nodes(self.ray)}
        for ref, flight in self.flights.items():
            if flight.node is None and not alive & set(flight.nodes):
                flight.stranded = True
                self.ray.cancel(ref, force=False)
        stuck = [item for item in self.ready if not alive & set(item.nodes)]
        self.ready = [item for item in self.ready if item not in stuck]
        heapq.heapify(self.ready)
        lost = [self.home.stranded(Flight(i.spec, None, i.nodes, time.time(), stranded=True)) for i in stuck]
        for record in lost:
            if interleaved(record.spec):
                self.group_home(record)
        return lost

    def cancel(self) -> None:
        """Stop everything in flight (each node's worker process group is killed by its launcher), and wait
        a while for the tasks to end."""
        for ref in [*self.flights, *self.rounds]:
            self.ray.cancel(ref, force=False)
        deadline = time.monotonic() + CANCEL_GRACE_S
        remaining = [*self.flights, *self.rounds]
        while remaining and time.monotonic() < deadline:
            _, remaining = self.ray.wait(remaining, num_returns=len(remaining), timeout=1.0)
