"""The ray launcher on a real multi-node Ray cluster on this machine: `ray start` processes (a head without a
bench slot, measuring nodes with one), started and stopped here, that leave no Ray process behind.

Ray's multi-node mode binds to the host's own address (it refuses loopback for a cluster of several nodes);
every node is on this machine, so no traffic leaves it. The driver (`bench run`) attaches to the head.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from bench.launchers.ray_cluster import local_cluster_file
from tests.conftest import build_tiny_bert, install_plugin, write_suite

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[1]
MACHINE = "ray-test-box"
MARKER = "BENCH_TEST_CLUSTER"
NODE = "BENCH_TEST_NODE"
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """A Ray cluster of `ray start` processes on this machine, each node's processes tagged in their
    environment (the cluster's id and the node's name) so that a test can kill one node and make sure that
    none is left."""

    def __init__(self, env: dict[str, str]) -> None:
        self.id = uuid.uuid4().hex
        self.port = free_port()
        self.env = dict(env, **{MARKER: self.id, "RAY_AUTH_MODE": "token"})
        # Ray 2.60 starts clusters with token authentication: each node reads the token this machine holds
        # (a private `ray.init` makes one; a fresh machine has none until it is generated)
        token = subprocess.run([RAY, "get-auth-token", "--generate"], env=self.env, capture_output=True, timeout=60)
        assert token.returncode == 0, token.stderr.decode()[-2000:]
        self.address = f"127.0.0.1:{self.port}"
        self.flags = ["--launcher", "ray", "--address", self.address]

    def _start(self, name: str, args: list[str], prefix: list[str] | None = None) -> None:
        env = dict(self.env, **{NODE: name})
        command = [*(prefix or []), RAY, "start", "--num-cpus=1", "--disable-usage-stats", *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"ray start ({name}) failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

    def head(self) -> LocalCluster:
        """The head node: no bench slot, so that it never measures (the driver attaches to it)."""
        self._start("head", ["--head", f"--port={self.port}", "--include-dashboard=false"])
        return self

    def node(self, name: str, prefix: list[str] | None = None) -> LocalCluster:
        """A measuring node (one bench slot), its own ports, started under `prefix` (e.g. unshare)."""
        ports = [
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
        ]
        self._start(name, [f"--address={self.address}", '--resources={"bench_slot": 1}', *ports], prefix)
        return self

    def processes(self, node: str | None = None) -> list[psutil.Process]:
        """This cluster's live processes (of one node when named)."""
        found = []
        for proc in psutil.process_iter():
            try:
                env = proc.environ()
            except psutil.Error:
                continue
            if env.get(MARKER) == self.id and (node is None or env.get(NODE) == node):
                found.append(proc)
        return found

    def kill_node(self, node: str) -> None:
        """The node's machine dies: every process of it is killed at once."""
        victims = self.processes(node)
        assert victims, f"node {node} has no processes"
        for proc in victims:
            proc.kill()
        psutil.wait_procs(victims, timeout=10)

    def stop(self) -> None:
        """Stop this cluster's processes only (`ray stop` would stop every Ray cluster on the machine,
        including another test's), and the address file its head left when it is still this cluster's."""
        for _ in range(3):  # again, for any process started while the others were stopping
            mine = self.processes()
            for proc in list(mine):  # and what they started (a head's agents do not inherit the marker)
                with contextlib.suppress(psutil.Error):
                    mine += [child for child in proc.children(recursive=True) if child not in mine]
            if not mine:
                break
            for proc in mine:
                with contextlib.suppress(psutil.Error):
                    proc.terminate()
            _, left = psutil.wait_procs(mine, timeout=15)
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(left, timeout=10)
        started = local_cluster_file()
        with contextlib.suppress(OSError):
            if started.read_text().strip().endswith(f":{self.port}"):
                started.unlink()


def ray_node_of(proc: psutil.Process) -> str | None:
    """The test node a process belongs to."""
    try:
        return proc.environ().get(NODE)
    except psutil.Error:
        return None


@pytest.fixture(scope="module")
def fault_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(REPO / "tests" / "fault_plugin", tmp_path_factory.mktemp("fault-site"))


@pytest.fixture(scope="module")
def cluster_env(fault_site: Path) -> dict[str, str]:
    path = os.pathsep.join([str(fault_site), str(REPO), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, BENCH_MACHINE=MACHINE, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


@pytest.fixture(scope="module")
def two_nodes(cluster_env: dict[str, str]) -> Iterator[LocalCluster]:
    """Head + measuring nodes b and c. The tests using it run in file order; the last one kills a node."""
    cluster = LocalCluster(cluster_env)
    try:
        cluster.head().node("b").node("c")
        yield cluster
    finally:
        cluster.stop()
    assert not cluster.processes(), "Ray processes were left behind"


def suite_file(path: Path, model: Path, data: Path, compressors: list[dict[str, Any]], **extra: Any) -> Path:
    return write_suite(path, model, data, compressors=compressors, **extra)


def bench(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench", "run", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def row(record: dict[str, Any]) -> str:
    """A stored record's row name (its label, else its compressor)."""
    compressor = record["spec"]["compressor"]
    return str(compressor["label"] or compressor["name"])


def records(results: Path) -> dict[str, dict[str, Any]]:
    """The stored records under a results folder, by run key."""
    found = {}
    for path in results.glob("*/*/*.json"):
        data = json.loads(path.read_text())
        found[data["spec"]["key"]] = data
    return found


TIMING_FIELDS = {
    "started_at",
    "finished_at",
    "wall_s",
    "phases_s",
    "latency",
    "scoring",
    "memory",
    "environment",
    "placement",
}


SERVING_CONTENT = ("where", "runtime", "reason", "torch_loaded")


def content(record: dict[str, Any]) -> dict[str, Any]:
    """What a run found, without when, how fast and where: equal for the same run on any launcher."""
    kept = {k: v for k, v in record.items() if k not in TIMING_FIELDS}
    kept["compression"] = {k: v for k, v in kept["compression"].items() if not k.endswith("_s")}
    kept["notes"] = [n for n in kept["notes"] if "while latency was timed" not in n]  # the machine's load
    if kept.get("serving"):  # where it was measured is content; the serving process's memory and load time are not
        kept["serving"] = {k: v for k, v in kept["serving"].items() if k in SERVING_CONTENT}
    return kept


def test_a_suite_on_two_nodes_stores_what_a_local_run_stores(
    two_nodes: LocalCluster, cluster_env: dict[str, str], tiny_model_dir: Path, tiny_squad_dir: Path, tmp_path: Path
) -> None:
    rows = [{"name": "baseline"}, {"name": "int8-dynamic"}, {"name": "prune-magnitude"}]
    suite = suite_file(tmp_path / "tiny.yaml", tiny_model_dir, tiny_squad_dir, rows, batch_sizes=[1, 2])
    flags = ["--limit", "6", "--quick"]
    local = bench(cluster_env, suite, "--results-dir", tmp_path / "local", *flags)
    assert local.returncode == 0, local.stdout + local.stderr
    on_ray = bench(two_nodes.env, suite, "--results-dir", tmp_path / "ray", *flags, *two_nodes.flags)
    assert on_ray.returncode == 0, on_ray.stdout + on_ray.stderr
    assert "2 node(s) with a bench slot" in on_ray.stdout

    here, there = records(tmp_path / "local"), records(tmp_path / "ray")
    assert sorted(here) == sorted(there) and len(there) == 6
    for key, record in there.items():
        assert content(record) == content(here[key]), key
        assert record["machine"] == MACHINE and record["environment"]["machine"] == MACHINE
        folder = tmp_path / "ray" / MACHINE / "tiny"
        assert (folder / f"{key}.predictions.jsonl").read_text() == (
            tmp_path / "local" / MACHINE / "tiny" / f"{key}.predictions.jsonl"
        ).read_text()
        assert (folder / ".logs" / f"{key}.log").stat().st_size > 0
        assert record["agreement"] is not None or record["spec"]["compressor"]["name"] == "baseline"

    placed = [r["placement"] for r in there.values()]
    nodes = {p["node_id"] for p in placed}
    assert len(nodes) == 2 and all(p["launcher"] == "ray" and p["node_address"] for p in placed)
    for node in nodes:  # one measurement per node at a time
        spans = sorted((p["started_unix"], p["finished_unix"]) for p in placed if p["node_id"] == node)
        assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans)), spans
    for record in there.values():  # the baselines ran before their groups
        if record["spec"]["compressor"]["name"] != "baseline":
            baseline = there[record["agreement"]["baseline_key"]]
            assert baseline["placement"]["finished_unix"] <= record["placement"]["started_unix"]

    again = bench(two_nodes.env, suite, "--results-dir", tmp_path / "ray", *flags, *two_nodes.flags)
    assert again.returncode == 0 and again.stdout.count("stored") == 6, again.stdout
    assert records(tmp_path / "ray") == there


def test_a_groups_rounds_run_on_the_node_that_measured_it(
    two_nodes: LocalCluster, tiny_model_dir: Path, tiny_squad_dir: Path, tmp_path: Path
) -> None:
    rows = [{"name": "baseline"}, {"name": "onnx"}]
    measurement = {"warmup": 1, "min_iterations": 2, "min_duration_s": 0, "threads": 1, "timeout_s": 300,
                   "rounds": 2, "round_s": 0.1}  # fmt: skip
    suite = suite_file(tmp_path / "r.yaml", tiny_model_dir, tiny_squad_dir, rows, batch_sizes=[1, 2],
                       measurement=measurement)  # fmt: skip
    result = bench(two_nodes.env, suite, "--results-dir", tmp_path / "ray", "--limit", "4", *two_nodes.flags)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("interleaved rounds of 2 run(s) on") == 2
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records(tmp_path / "ray").values():
        groups.setdefault(record["spec"]["group"], []).append(record)
    assert len(groups) == 2
    for members in groups.values():
        assert len({r["placement"]["node_id"] for r in members}) == 1  # a group's runs and rounds on one node
        plans = [r["interleaving"] for r in members]
        assert all(p is not None for p in plans) and len({p["session"] for p in plans}) == 1
        assert sorted(plans[0]["members"]) == sorted(r["spec"]["key"] for r in members)
        assert all(len(r["latency"]["forward"]["rounds_ms"]) == 2 for r in members)
        assert all(not p["held"] and len(p["load_s"]) == 2 for p in plans)  # a fresh process each round


def hanging_suite(tmp_path: Path, model: Path, data: Path, marker: Path) -> Path:
    rows = [
        {"name": "baseline"},
        {"name": "fault", "label": "hangs-once", "config": {"kind": "hang", "once_marker": str(marker)}},
        {"name": "int8-dynamic"},
    ]
    measurement = {"warmup": 1, "min_iterations": 3, "min_duration_s": 0, "threads": 1, "timeout_s": 120, "rounds": 1}
    return suite_file(tmp_path / "hang.yaml", model, data, rows, measurement=measurement)


def start_bench(env: dict[str, str], out: Path, *args: str | Path) -> subprocess.Popen[bytes]:
    def default_signals() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with out.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "bench", "run", *map(str, args)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=default_signals,
        )


def worker_label(proc: psutil.Process) -> str | None:
    """The row a `python -m bench.worker JOB` process runs (from its job file)."""
    try:
        command = proc.cmdline()
        if "bench.worker" not in command:
            return None
        job = json.loads(Path(command[-1]).read_text())
    except (psutil.Error, OSError, ValueError, IndexError):
        return None
    return row(job)


def hanging_worker(cluster: LocalCluster, marker: Path, bench_run: subprocess.Popen[bytes]) -> psutil.Process:
    """The worker process of the hanging run, once the fault has begun."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert bench_run.poll() is None, "bench run ended before the fault"
        if marker.exists():
            for proc in cluster.processes():
                if worker_label(proc) == "hangs-once":
                    return proc
        time.sleep(0.2)
    raise AssertionError("the hanging run never started")


def hang_a_run(
    cluster: LocalCluster, model: Path, data: Path, tmp_path: Path
) -> tuple[subprocess.Popen[bytes], psutil.Process, list[str | Path]]:
    """`bench run` of the hanging suite in the background, once its hanging run has begun: the command, the
    hanging worker, and the command's arguments (to run it again)."""
    marker = tmp_path / "hung"
    suite = hanging_suite(tmp_path, model, data, marker)
    args: list[str | Path] = [suite, "--results-dir", tmp_path / "res", "--limit", "4", "--quick", *cluster.flags]
    run = start_bench(cluster.env, tmp_path / "out.txt", *args)
    return run, hanging_worker(cluster, marker, run), args


def test_ctrl_c_on_the_driver_cancels_the_runs_and_kills_their_workers(
    two_nodes: LocalCluster, tiny_model_dir: Path, tiny_squad_dir: Path, tmp_path: Path
) -> None:
    run, worker, _ = hang_a_run(two_nodes, tiny_model_dir, tiny_squad_dir, tmp_path)
    os.kill(run.pid, signal.SIGINT)
    assert run.wait(timeout=120) == 130, (tmp_path / "out.txt").read_text()
    worker.wait(timeout=30)  # its node's launcher killed it
    stored = records(tmp_path / "res")
    assert "hangs-once" not in [row(r) for r in stored.values()]
    assert not [p for p in two_nodes.processes() if worker_label(p) is not None]


def test_a_node_that_dies_mid_run_gives_an_error_record_and_the_suite_completes(
    two_nodes: LocalCluster, tiny_model_dir: Path, tiny_squad_dir: Path, tmp_path: Path
) -> None:
    run, worker, again_command = hang_a_run(two_nodes, tiny_model_dir, tiny_squad_dir, tmp_path)
    victim = ray_node_of(worker)
    assert victim in ("b", "c")
    two_nodes.kill_node(victim)
    assert run.wait(timeout=300) == 1, (tmp_path / "out.txt").read_text()

    stored = {row(r): r for r in records(tmp_path / "res").values()}
    assert stored["baseline"]["status"] == "ok" and stored["int8-dynamic"]["status"] == "ok"
    lost = stored["hangs-once"]
    assert lost["status"] == "error" and lost["error"]["type"] == "node"
    assert lost["placement"]["node_id"][:8] in lost["error"]["message"], lost["error"]["message"]
    assert "died" in lost["error"]["message"]

    again = bench(two_nodes.env, *again_command)  # only what is missing runs
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("stored") == 2
    assert records(tmp_path / "res")[lost["spec"]["key"]]["status"] == "ok"


def test_a_local_path_missing_on_a_node_stops_before_any_run(
    cluster_env: dict[str, str], tiny_squad_dir: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    model = build_tiny_bert(shared / "model")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("needs `unshare -m` (root) to hide a folder from one node")
    hide = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs tmpfs "{shared}" && exec "$0" "$@"']
    cluster = LocalCluster(cluster_env)
    try:
        cluster.head().node("blind", prefix=hide)
        suite = suite_file(tmp_path / "tiny.yaml", model, tiny_squad_dir, [{"name": "baseline"}])
        done = bench(cluster.env, suite, "--results-dir", tmp_path / "res", *cluster.flags)
    finally:
        cluster.stop()
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot see {model}" in lines[0] and "(node " in lines[0], done.stderr
    assert not records(tmp_path / "res")
    assert not cluster.processes()
