"""What the Ray launcher runs on a node: the preflight probe, and one run.

A run on a node is the local launcher's run, unchanged: a fresh `python -m bench.worker` process in its own
process group, with its timeout and memory watchdog, in a scratch folder of the node. The Ray task is a thin
shell around it that hands the baseline's predictions in and the record, predictions and log back; the
driver stores them. Nothing here is imported by `bench run --launcher local`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench import __version__
from bench.core.environment import Environment, capture, default_threads, machine_name
from bench.core.records import LOG_SUFFIX, PREDICTIONS_SUFFIX, Placement, RunRecord
from bench.core.spec import RunSpec
from bench.launchers.rounds import interleave
from bench.launchers.single_run import run_one

SCRATCH_PREFIX = "bench-ray-"


class EventSink(Protocol):
    """Where a node says that a run has started (a Ray queue on the driver's node)."""

    def put(self, item: tuple[str, str, str, float], block: bool = ..., timeout: float | None = ...) -> None:
        """Send one event."""


@dataclass(frozen=True)
class NodeFacts:
    """What the preflight learns of a node: who it is, its hardware and software, and what it cannot see."""

    node_id: str
    address: str
    machine: str
    environment: Environment
    threads: int
    """Its default intra-op thread count (physical cores)."""
    bench_version: str
    missing: tuple[str, ...]
    """The suite's local paths that do not exist on this node."""

    @property
    def name(self) -> str:
        """How messages name the node: its address and the start of its Ray id."""
        return f"{self.address} (node {self.node_id[:8]})"

    @property
    def hardware(self) -> tuple[str, int | None, tuple[str, ...]]:
        """Its hardware class: nodes of one class measure alike (CPU model, core count, GPUs)."""
        env = self.environment
        return env.cpu_model, env.logical_cores, tuple(g.name for g in env.gpus)


def node_identity() -> tuple[str, str]:
    """This node's Ray id and address (inside a Ray task)."""
    import ray

    return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()


def probe(paths: list[str]) -> NodeFacts:
    """The preflight on one node: its identity and environment, and which of `paths` it lacks."""
    node_id, address = node_identity()
    return NodeFacts(
        node_id=node_id,
        address=address,
        machine=machine_name(),
        environment=capture(gpus=True),
        threads=default_threads(),
        bench_version=__version__,
        missing=tuple(p for p in paths if not Path(p).exists()),
    )


@dataclass(frozen=True)
class NodeRun:
    """One run's outcome as the node hands it back: the record (placed on the node) and the run's log."""

    record: RunRecord
    log: bytes


def rounds_folder(group: str) -> Path:
    """Where a group's runs keep their saved models on this node until its interleaved rounds."""
    return Path(tempfile.gettempdir()) / f"{SCRATCH_PREFIX}rounds" / group


def measure(
    spec: RunSpec,
    baseline_key: str | None,
    baseline_predictions: bytes | None,
    events: EventSink | None,
    rounds_follow: bool = False,
) -> tuple[NodeRun, bytes | None]:
    """Run `spec` on this node as the local launcher would; returns the run and its predictions file. With
    `rounds_follow`, its work folder stays in the group's folder on this node for `interleave_here`."""
    node_id, address = node_identity()
    if events is not None:
        events.put(("started", spec.key, node_id, time.time()))
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    if rounds_follow:
        scratch = rounds_folder(spec.group) / spec.key
        scratch.mkdir(parents=True, exist_ok=True)
    try:
        if baseline_key is not None and baseline_predictions is not None:
            (scratch / f"{baseline_key}{PREDICTIONS_SUFFIX}").write_bytes(baseline_predictions)
        started = time.time()
        record = run_one(spec, scratch, baseline_key, rounds_follow=rounds_follow)
        finished = time.time()
        record.placement = Placement(
            launcher="ray", node_id=node_id, node_address=address, started_unix=started, finished_unix=finished
        )
        predictions = scratch / f"{spec.key}{PREDICTIONS_SUFFIX}"
        log = scratch / ".logs" / f"{spec.key}{LOG_SUFFIX}"
        return (
            NodeRun(record=record, log=log.read_bytes() if log.is_file() else b""),
            predictions.read_bytes() if predictions.is_file() else None,
        )
    finally:
        if not rounds_follow:
            shutil.rmtree(scratch, ignore_errors=True)


def interleave_here(records: list[RunRecord], group: str) -> list[RunRecord]:
    """Time the group's served runs, measured on this node, in interleaved rounds; returns their records
    (the driver stores them) and removes the group's folder."""
    root = rounds_folder(group)
    try:
        updated = {}
        for_rounds = []
        for record in records:  # each run kept its work folder in its own scratch folder
            folder = root / record.spec.key
            if (folder / ".work" / record.spec.key).is_dir():
                for_rounds.append((record, folder))
        if for_rounds:
            staged = root / "rounds"
            for record, folder in for_rounds:
                (staged / ".work").mkdir(parents=True, exist_ok=True)
                (folder / ".work" / record.spec.key).rename(staged / ".work" / record.spec.key)
            updated = {r.spec.key: r for r in interleave([r for r, _ in for_rounds], staged)}
        return [updated.get(r.spec.key, r) for r in records]
    finally:
        shutil.rmtree(root, ignore_errors=True)
