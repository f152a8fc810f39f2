"""The `ray` launcher: a suite's runs spread over a Ray cluster, one measurement per node at a time.

Every node that may measure advertises the custom resource `bench_slot: 1` (`ray start ...
--resources='{"bench_slot": 1}'`). A CPU run reserves a whole slot, so two runs never share a node's cores; a
CUDA run reserves one GPU and 1/gpu_runs_per_node of a slot. Before any run starts, a probe on every such
node checks that it sees the suite's local paths and runs the driver's bench version, and records its
hardware. Each group's baseline is submitted first; its predictions reach the group's compressed runs as a
Ray object (never through a shared filesystem), and those runs are held to nodes of the baseline's hardware
class. The driver stores every record, predictions file and log in results/<machine>/<suite>/, where
<machine> is the node that measured the run.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bench import __version__
from bench.core import devices
from bench.core.errors import BenchError
from bench.core.launcher import Launcher, Outcome, ResolvedSuite, RunOptions
from bench.core.records import (
    LOG_SUFFIX,
    PREDICTIONS_SUFFIX,
    ErrorInfo,
    Placement,
    RunRecord,
    Status,
    atomic_write_text,
    save_record,
    supersede,
)
from bench.core.spec import RunSpec
from bench.folder_lock import folder_lock
from bench.interrupts import Interrupted, deferred, shielded
from bench.launchers.board import RunBoard
from bench.launchers.ray_node import NodeFacts, NodeRun, measure, probe
from bench.plan import results_folder
from bench.report.text import for_console
from bench.runner import baseline_keys, clean_work, plan, reusable, selected

if TYPE_CHECKING:
    from ray import ObjectRef

SLOT = "bench_slot"
NODE_LABEL = "ray.io/node-id"
POLL_S = 0.5
NODE_CHECK_S = 5.0
CANCEL_GRACE_S = 30.0
PROBE_TIMEOUT_S = 120.0
SETUP_HINT = f"""start every node that may measure with `ray start ... --resources='{{"{SLOT}": 1}}'`"""


def import_ray() -> Any:
    """The ray module, or one clear line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BenchError("--launcher ray needs Ray: pip install 'bench[ray]'") from None
    return ray


LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Set to 0 before Ray is imported, Ray binds a single-node instance to 127.0.0.1 (on any platform)."""


def local_cluster_file() -> Path:
    """Where `ray start` on this machine writes its cluster's address (removed by `ray stop`)."""
    return Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray" / "ray_current_cluster"


@contextlib.contextmanager
def connected(address: str | None, console: Console) -> Iterator[Any]:
    """Ray, connected to the cluster at `address`, else $RAY_ADDRESS, else the cluster that `ray start` began
    on this machine; without any, to a private Ray instance bound to 127.0.0.1 whose one node has one bench
    slot. Disconnected on exit."""
    target = address or os.environ.get("RAY_ADDRESS")
    if not target and local_cluster_file().is_file():
        target = "auto"
        console.print("  [dim]ray: connecting to the Ray cluster started on this machine (--address auto)[/dim]")
    if not target:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    ray = import_ray()
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if target:
            ray.init(address=target, **quiet)
        else:
            console.print("  [dim]ray: no cluster given or started here: starting a private Ray on 127.0.0.1[/dim]")
            ray.init(resources={SLOT: 1}, include_dashboard=False, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = target or "this machine"
        raise BenchError(f"cannot connect to the Ray cluster at {where}: {first_line(exc)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def slot_nodes(ray: Any) -> list[dict[str, Any]]:
    """The live nodes that advertise a bench slot."""
    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(SLOT, 0) > 0]


def local_paths(resolved: ResolvedSuite) -> list[str]:
    """The suite's files that every measuring node must see: local models, data, calibration, corpora."""
    sources = [resolved.model, resolved.dataset, resolved.calibration]
    paths = [s.location for s in sources if s is not None and s.local and not s.architecture]
    return sorted({*paths, *resolved.tokenizer_corpus})


def preflight(ray: Any, resolved: ResolvedSuite, console: Console) -> list[NodeFacts]:
    """Probe every slot node (pinned to it). A node that does not answer (gone, or not schedulable) is left
    out with a warning; a BenchError names the first node that lacks a path or runs another bench version.
    Returns the answering nodes' facts."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = slot_nodes(ray)
    if not nodes:
        raise BenchError(f"no node of the Ray cluster advertises the '{SLOT}' resource: {SETUP_HINT}")
    paths = local_paths(resolved)
    remote = ray.remote(probe)
    refs = {
        n["NodeID"]: remote.options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False), max_retries=0
        ).remote(paths)
        for n in nodes
    }
    ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
    facts: list[NodeFacts] = []
    for node_id, ref in refs.items():
        try:
            facts.append(ray.get(ref, timeout=0))
        except Exception as exc:
            console.print(
                f"  [yellow]ray: node {node_id[:8]} did not answer the preflight, left out:[/yellow] "
                f"{for_console(type(exc).__name__)}",
                highlight=False,
            )
    if not facts:
        raise BenchError("no node of the Ray cluster with a bench slot answered the preflight")
    for node in facts:
        if node.bench_version != __version__:
            raise BenchError(
                f"node {node.name} runs bench {node.bench_version}, this driver bench {__version__}: "
                "install the same version on every node"
            )
        if node.missing:
            raise BenchError(
                f"node {node.name} cannot see {node.missing[0]}: local paths must exist on every node that "
                "may run them (a shared filesystem; see docs/scaling.md)"
            )
    return sorted(facts, key=lambda n: (n.machine, n.address, n.node_id))


def cluster_threads(resolved: ResolvedSuite, nodes: list[NodeFacts]) -> int:
    """The thread count of the runs: the suite's, or the nodes' physical cores when they all agree."""
    if resolved.suite.measurement.threads:
        return resolved.suite.measurement.threads
    counts = {n.threads for n in nodes}
    if len(counts) > 1:
        raise BenchError(
            f"the cluster's nodes have different core counts ({', '.join(map(str, sorted(counts)))}): set "
            "measurement.threads in the suite, so that every run uses the same number of threads"
        )
    return counts.pop()


def first_line(exc: BaseException) -> str:
    """An exception's message, first line only."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


class RayLauncher(Launcher):
    """Spreads the runs over a Ray cluster's bench slots; the driver stores every record."""

    name = "ray"
    description = "a Ray cluster: one run per node at a time, records stored by the driver (pip install 'bench[ray]')"

    def run(self, resolved: ResolvedSuite, console: Console) -> list[Outcome]:
        with connected(self.options.address, console) as ray:
            nodes = preflight(ray, resolved, console)
            console.print(
                f"  [dim]ray: {len(nodes)} node(s) with a bench slot: "
                f"{for_console(', '.join(n.name for n in nodes))}[/dim]",
                highlight=False,
            )
            specs = plan(resolved, self.options, cluster_threads(resolved, nodes))
            with contextlib.ExitStack() as locks:
                for machine in sorted({n.machine for n in nodes}):
                    folder = results_folder(self.options.results_dir, machine, resolved.suite.name)
                    locks.enter_context(folder_lock(folder))
                    clean_work(folder, console)
                return Dispatch(ray, self.options, resolved.suite.name, nodes, console).run(specs)


class Dispatch:
    """Submits the runs, baselines first, and stores each outcome as it comes home."""

    def __init__(self, ray: Any, options: RunOptions, suite: str, nodes: list[NodeFacts], console: Console) -> None:
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray, self.options, self.suite, self.console = ray, options, suite, console
        self.nodes = {n.node_id: n for n in nodes}
        self.classes: dict[tuple[str, int | None, tuple[str, ...]], tuple[str, ...]] = {}
        for n in nodes:
            self.classes[n.hardware] = (*self.classes.get(n.hardware, ()), n.node_id)
        here = ray.get_runtime_context().get_node_id()
        self.events = Queue(
            actor_options={"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=True)}
        )
        self.remote = ray.remote(measure)
        self.ready: list[Ready] = []
        self.waiting: dict[str, list[Ready]] = {}
        self.flights: dict[ObjectRef, Flight] = {}
        self.gpus = any(n.environment.gpus for n in nodes)

    def folder(self, machine: str) -> Path:
        """Where runs measured on `machine` are stored."""
        return results_folder(self.options.results_dir, machine, self.suite)

    def stored(self, spec: RunSpec) -> RunRecord | None:
        """A done record of this run from a machine of the cluster's hardware, if there is one."""
        seen: set[str] = set()
        for node in self.nodes.values():
            if node.machine in seen:
                continue
            seen.add(node.machine)
            record = reusable(self.folder(node.machine), spec, node.environment, self.options.force)
            if record is not None:
                return record
        return None

    def class_of(self, record: RunRecord | None) -> tuple[str, ...]:
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

    def run(self, specs: list[RunSpec]) -> list[Outcome]:
        self.baselines = baselines = baseline_keys(specs)
        chosen = selected(specs, self.options.only)
        outcomes: list[Outcome] = []
        pending_groups = set()
        with RunBoard(len(chosen), self.console) as board:
            self.board = board
            stored_baselines: dict[str, RunRecord | None] = {}
            for index, spec in enumerate(chosen):
                stored = self.stored(spec)
                if stored is not None:
                    outcomes.append(Outcome(stored, reused=True))
                    board.stored(spec)
                    if spec.is_baseline:
                        stored_baselines[spec.group] = stored
                    continue
                if spec.is_baseline:
                    pending_groups.add(spec.group)
                    heapq.heappush(self.ready, Ready((0, index), spec, nodes=tuple(self.nodes)))
                elif spec.group in pending_groups:
                    self.waiting.setdefault(spec.group, []).append(Ready((1, index), spec))
                else:
                    record = stored_baselines.get(spec.group) or self.baseline_record(baselines.get(spec.group))
                    ref = self.stored_predictions(record)
                    heapq.heappush(self.ready, Ready((1, index), spec, ref, self.class_of(record)))
            try:
                outcomes += self.drive()
            except BaseException:
                with shielded(), contextlib.suppress(Exception):
                    self.cancel()
                raise
        return outcomes

    def baseline_record(self, key: str | None) -> RunRecord | None:
        """The stored record of a group's baseline that this run does not measure (--only), if any."""
        if key is None:
            return None
        from bench.core.records import RecordError, load_record, record_path

        for machine in sorted({n.machine for n in self.nodes.values()}):
            path = record_path(self.folder(machine), key)
            if path.is_file():
                with contextlib.suppress(RecordError):
                    return load_record(path)
        return None

    def stored_predictions(self, record: RunRecord | None) -> Any:
        """The stored predictions of a baseline record, put into the object store (None without them)."""
        if record is None:
            return None
        path = self.folder(record.machine) / f"{record.spec.key}{PREDICTIONS_SUFFIX}"
        return self.ray.put(path.read_bytes()) if path.is_file() else None

    def submit(self, item: Ready) -> None:
        spec = item.spec
        cuda = devices.is_cuda(spec.device) and self.gpus
        resources = {SLOT: 1.0 / self.options.gpu_runs_per_node if cuda else 1.0}
        options: dict[str, Any] = {
            "num_returns": 2,
            "max_retries": 0,
            "num_cpus": 0 if cuda else 1,
            "num_gpus": 1 if cuda else 0,
            "resources": resources,
            "name": f"bench {spec.compressor.display_name} {spec.key[:8]}",
            "label_selector": {NODE_LABEL: f"in({','.join(item.nodes)})"},
        }
        baseline_key = None if spec.is_baseline else self.baselines.get(spec.group)
        run_ref, predictions_ref = self.remote.options(**options).remote(spec, baseline_key, item.baseline, self.events)
        self.flights[run_ref] = Flight(spec, predictions_ref, item.nodes, time.time())

    def drive(self) -> list[Outcome]:
        """Submit while under --max-parallel, store each run as it ends, release groups as baselines end."""
        outcomes: list[Outcome] = []
        limit = self.options.max_parallel or float("inf")
        checked = time.monotonic()
        with deferred() as signals:
            while self.ready or self.flights:
                if signals:
                    raise Interrupted(signals[0])
                outcomes += self.step(limit)
                if time.monotonic() - checked > NODE_CHECK_S:
                    checked = time.monotonic()
                    outcomes += [Outcome(r, reused=False) for r in self.check_nodes()]
        return outcomes

    def step(self, limit: float) -> list[Outcome]:
        """Submit what fits, wait a moment for one run to end, and store those that did."""
        outcomes: list[Outcome] = []
        while self.ready and len(self.flights) < limit:
            self.submit(heapq.heappop(self.ready))
        done, _ = self.ray.wait(list(self.flights), num_returns=1, timeout=POLL_S)
        self.read_events()
        for ref in done:
            flight = self.flights.pop(ref)
            record = self.come_home(ref, flight)
            outcomes.append(Outcome(record, reused=False))
            if flight.spec.is_baseline:
                self.release(flight, record)
        return outcomes

    def read_events(self) -> None:
        with contextlib.suppress(Exception):
            for kind, key, node_id, started in self.events.get_nowait_batch(self.events.qsize()):
                for flight in self.flights.values():
                    if kind == "started" and flight.spec.key == key:
                        flight.node, flight.started = node_id, started
                        node = self.nodes.get(node_id)
                        self.board.started(flight.spec, node.name if node else node_id[:8])

    def release(self, flight: Flight, record: RunRecord) -> None:
        """A baseline came home: its group's runs become ready, held to its hardware class."""
        nodes = self.class_of(record)
        predictions = flight.predictions if record.status == Status.OK else None
        for item in self.waiting.pop(flight.spec.group, []):
            heapq.heappush(self.ready, Ready(item.rank, item.spec, predictions, nodes))

    def come_home(self, ref: ObjectRef, flight: Flight) -> RunRecord:
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

    def lost(self, flight: Flight, exc: BaseException) -> RunRecord:
        """The record of a run whose Ray task failed: the node died, the task was cancelled, or the node could
        not run bench's code at all."""
        node = self.nodes.get(flight.node or "")
        where = f"on node {node.name}" if node else "before it started on a node"
        kind = type(exc).__name__
        message = f"the Ray task {where} failed: {kind}: {first_line(exc)}"
        if flight.stranded:
            message = f"no node it may run on is left in the cluster (all of {len(flight.nodes)} are gone)"
        elif kind in ("NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "OwnerDiedError"):
            message = f"the node {node.name if node else '?'} (or its Ray worker) died during the run: {kind}"
        elif kind == "TaskCancelledError":
            message = f"the Ray task was cancelled {where}"
        finished = time.time()
        facts = node or next(iter(self.nodes.values()))
        stamp = datetime.fromtimestamp
        placement = (
            Placement(
                launcher="ray",
                node_id=node.node_id,
                node_address=node.address,
                started_unix=flight.started or flight.submitted,
                finished_unix=finished,
            )
            if node
            else None
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
        folder = self.folder(record.machine)
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
        records = []
        for item in stuck:
            flight = Flight(item.spec, None, item.nodes, time.time(), stranded=True)
            record = self.lost(flight, RuntimeError("its nodes are gone"))
            self.store(record, None, b"")
            self.board.finished(record)
            records.append(record)
        return records

    def cancel(self) -> None:
        """Stop everything in flight (each node's worker process group is killed by its launcher), and wait
        a while for the tasks to end."""
        for ref in self.flights:
            self.ray.cancel(ref, force=False)
        deadline = time.monotonic() + CANCEL_GRACE_S
        remaining = list(self.flights)
        while remaining and time.monotonic() < deadline:
            _, remaining = self.ray.wait(remaining, num_returns=len(remaining), timeout=1.0)
