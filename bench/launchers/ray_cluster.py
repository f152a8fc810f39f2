"""Reaching a Ray cluster for the `ray` launcher: connecting (or starting a private one on 127.0.0.1), the
nodes that advertise a bench slot, and the preflight that probes each of them.

Every node that may measure advertises the custom resource `bench_slot: 1` (`ray start ...
--resources='{"bench_slot": 1}'`). A CPU run reserves a whole slot, so two runs never share a node's cores; a
CUDA run reserves one GPU and 1/gpu_runs_per_node of a slot. Before any run starts, a probe on every such
node checks that it sees the suite's local paths and runs the driver's bench version, and records its
hardware. Each group's baseline is submitted first; its predictions reach the group's compressed runs as a
Ray object (never through a shared filesystem), and those runs are held to nodes of the baseline's hardware
class (see bench.launchers.ray_launcher).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bench import __version__
from bench.core.errors import BenchError
from bench.core.launcher import ResolvedSuite
from bench.launchers.ray_node import NodeFacts, probe
from bench.report.text import for_console

if TYPE_CHECKING:
    pass

SLOT = "bench_slot"
NODE_LABEL = "ray.io/node-id"
POLL_S = 0.5
NODE_CHECK_S = 5.0
CANCEL_GRACE_S = 30.0
PROBE_TIMEOUT_S = 120.0
REACH_TIMEOUT_S = 5.0
"""How long the driver waits for a TCP connection to the cluster's address before saying it is unreachable
(Ray itself retries an unreachable cluster without end)."""
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
        started = local_cluster_file().read_text().strip()
        if unreachable(started) is None:
            target = "auto"
            console.print("  [dim]ray: connecting to the Ray cluster started on this machine (--address auto)[/dim]")
        else:
            console.print(f"  [dim]ray: the Ray cluster started on this machine ({started}) is gone[/dim]")
    if target and (why := unreachable(target)) is not None:
        raise BenchError(f"cannot connect to the Ray cluster at {target}: {why}")
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


def unreachable(address: str) -> str | None:
    """Why nothing answers at a cluster address ("host:port" or "ray://host:port"), or None when a TCP
    connection opens (or the address names no port to try, such as "auto")."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"nothing answers there ({exc.strerror or type(exc).__name__})"


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
