"""Launchers as plugins, the command line's launcher options, and the Ray launcher's checks that need no
cluster (a stand-in for the `ray` module answers them). The real cluster runs are in test_ray_launcher.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench.config import load_suite
from bench.core.environment import capture
from bench.core.errors import BenchError
from bench.core.launcher import Launcher, ResolvedSuite, RunOptions
from bench.core.registry import LAUNCHERS
from bench.launchers.local import LocalLauncher
from bench.launchers.ray_cluster import SLOT, cluster_threads, local_cluster_file, local_paths, preflight
from bench.launchers.ray_node import NodeFacts
from bench.validate import resolve

from .conftest import REPO, write_suite


def closed_address() -> str:
    """A loopback address where nothing listens (Ray alone would retry it without end)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


CLOSED = closed_address()


def bench(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)


def test_launchers_are_registered_plugins() -> None:
    assert {"local", "ray"} <= set(LAUNCHERS.names())
    assert LAUNCHERS.load("local") is LocalLauncher
    assert issubclass(LAUNCHERS.load("ray"), Launcher)
    listed = bench("list")
    assert listed.returncode == 0 and "launchers" in listed.stdout and "Ray cluster" in listed.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--launcher", "rya"], "unknown launcher 'rya' (did you mean 'ray'?)"),
        (["--launcher", "ray", "--max-parallel", "0"], "--max-parallel must be a positive number, got 0"),
        (["--launcher", "ray", "--gpu-runs-per-node", "0"], "--gpu-runs-per-node must be a positive number"),
        (["--address", "auto"], "need a cluster launcher (--launcher ray)"),
        (["--launcher", "ray", "--address", CLOSED], f"cannot connect to the Ray cluster at {CLOSED}: nothing answers"),
    ],
)
def test_bad_launcher_options_are_one_line_and_exit_2(tiny_suite: Path, flags: list[str], message: str) -> None:
    done = bench("run", tiny_suite, "--results-dir", tiny_suite.parent / "res", *flags)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tiny_suite.parent / "res").exists()


@pytest.fixture
def resolved(tiny_suite: Path) -> ResolvedSuite:
    return resolve(load_suite(tiny_suite), tiny_suite)


def test_local_paths_are_the_suites_local_model_and_data(resolved: ResolvedSuite) -> None:
    paths = local_paths(resolved)
    assert resolved.model.location in paths and resolved.dataset.location in paths
    built = replace(resolved, model=replace(resolved.model, architecture=True))
    assert resolved.model.location not in local_paths(built)


def facts(node_id: str, threads: int = 2, missing: tuple[str, ...] = (), version: str | None = None) -> NodeFacts:
    from bench import __version__

    return NodeFacts(
        node_id=node_id,
        address="10.0.0.1",
        machine="m",
        environment=capture(),
        threads=threads,
        bench_version=version or __version__,
        missing=missing,
    )


@dataclass
class FakeRay:
    """Answers what the preflight asks of the `ray` module: the nodes, and each node's probe."""

    nodes_list: list[dict[str, Any]]
    answers: dict[str, NodeFacts | Exception] = field(default_factory=dict)

    def nodes(self) -> list[dict[str, Any]]:
        return self.nodes_list

    def remote(self, _fn: object) -> FakeRay:
        return self

    def options(self, **kwargs: Any) -> FakeRemote:
        return FakeRemote(self, kwargs["scheduling_strategy"].node_id)

    def wait(self, refs: list[str], **_: Any) -> tuple[list[str], list[str]]:
        return refs, []

    def get(self, ref: str, timeout: float | None = None) -> NodeFacts:
        answer = self.answers[ref]
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class FakeRemote:
    ray: FakeRay
    node_id: str

    def remote(self, _paths: list[str]) -> str:
        return self.node_id


def node(node_id: str, slot: float = 1.0) -> dict[str, Any]:
    return {"NodeID": node_id, "Alive": True, "Resources": {"CPU": 2.0, SLOT: slot} if slot else {"CPU": 2.0}}


def test_preflight_needs_a_node_with_a_bench_slot(resolved: ResolvedSuite) -> None:
    pytest.importorskip("ray")
    with pytest.raises(BenchError, match=r"advertises the 'bench_slot' resource: start every node .*ray start"):
        preflight(FakeRay([node("a" * 56, slot=0)]), resolved, Console(quiet=True))


def test_preflight_names_the_node_that_lacks_a_path(resolved: ResolvedSuite) -> None:
    pytest.importorskip("ray")
    a, b = "a" * 56, "b" * 56
    ray = FakeRay([node(a), node(b)], {a: facts(a), b: facts(b, missing=("/data/model",))})
    with pytest.raises(BenchError, match=r"node 10\.0\.0\.1 \(node bbbbbbbb\) cannot see /data/model"):
        preflight(ray, resolved, Console(quiet=True))


def test_preflight_refuses_another_bench_version(resolved: ResolvedSuite) -> None:
    pytest.importorskip("ray")
    a = "a" * 56
    with pytest.raises(BenchError, match=r"runs bench 0\.0\.1, this driver bench"):
        preflight(FakeRay([node(a)], {a: facts(a, version="0.0.1")}), resolved, Console(quiet=True))


def test_preflight_leaves_out_a_node_that_does_not_answer(resolved: ResolvedSuite) -> None:
    pytest.importorskip("ray")
    a, b = "a" * 56, "b" * 56
    console = Console(record=True, width=200)
    found = preflight(FakeRay([node(a), node(b)], {a: facts(a), b: RuntimeError("gone")}), resolved, console)
    assert [n.node_id for n in found] == [a]
    assert "node bbbbbbbb did not answer the preflight, left out" in console.export_text()
    with pytest.raises(BenchError, match="no node of the Ray cluster with a bench slot answered"):
        preflight(FakeRay([node(b)], {b: RuntimeError("gone")}), resolved, Console(quiet=True))


def test_threads_come_from_the_suite_or_from_nodes_that_agree(resolved: ResolvedSuite) -> None:
    assert cluster_threads(resolved, [facts("a"), facts("b")]) == resolved.suite.measurement.threads == 1
    unset = replace(resolved, suite=resolved.suite.model_copy(update={"measurement": _threads(resolved, None)}))
    assert cluster_threads(unset, [facts("a", threads=8), facts("b", threads=8)]) == 8
    with pytest.raises(BenchError, match=r"different core counts \(8, 16\): set measurement.threads"):
        cluster_threads(unset, [facts("a", threads=8), facts("b", threads=16)])


def _threads(resolved: ResolvedSuite, threads: int | None) -> Any:
    return resolved.suite.measurement.model_copy(update={"threads": threads})


def test_run_options_default_to_the_local_launcher(tmp_path: Path) -> None:
    options = RunOptions(results_dir=tmp_path)
    assert options.launcher == "local" and options.max_parallel is None and options.gpu_runs_per_node == 1


@pytest.mark.slow
@pytest.mark.ray
def test_without_an_address_a_private_ray_on_loopback_runs_the_suite(
    tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path
) -> None:
    pytest.importorskip("ray")
    if local_cluster_file().exists():
        pytest.skip("a Ray cluster started with `ray start` runs on this machine: bench would join it")
    suite = write_suite(tmp_path / "tiny.yaml", tiny_model_dir, tiny_squad_dir)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "bench", "run", str(suite), "--results-dir", str(tmp_path / "res")]
    done = subprocess.run(
        [*command, "--launcher", "ray", "--limit", "4", "--quick"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting a private Ray on 127.0.0.1" in done.stdout, done.stdout
    stored = [json.loads(p.read_text()) for p in (tmp_path / "res").glob("*/tiny/*.json")]
    assert len(stored) == 2 and all(r["placement"]["node_address"] == "127.0.0.1" for r in stored)
    agreement = next(r["agreement"] for r in stored if r["spec"]["compressor"]["name"] == "int8-dynamic")
    assert agreement is not None and agreement["n_examples"] > 0
