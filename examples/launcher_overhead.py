"""What the Ray launcher costs against the local one: the same small suite (the tests' tiny model, 3 rows x 2
batch sizes, `--limit 6 --quick --force`) under `local`, a private Ray, a started 1-node cluster and a
started 2-node cluster of `ray start` processes on this machine, each `--repeat` times, one after another.

    python examples/launcher_overhead.py --workdir /tmp/overhead

Prints each command's wall time and, from the records, the runs' own time, the gap between two runs on a
node and the span from the first run's start to the last one's end. Run it on an otherwise idle machine.
Needs `pip install -e ".[dev]"` (Ray, and the tests' helpers). It stops every Ray process when it ends.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import CONTEXTS, build_tiny_bert, squad_json, write_suite  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_cluster(nodes: int, env: dict[str, str]) -> str:
    """A head without a bench slot and `nodes` measuring nodes; returns the address."""
    subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
    port = free_port()
    common = ["--num-cpus=1", "--disable-usage-stats"]
    head = [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common]
    subprocess.run(head, env=env, check=True, capture_output=True)
    for _ in range(nodes):
        ports = [f"--{flag}={free_port()}" for flag in ("dashboard-agent-listen-port", "metrics-export-port")]
        ports.append(f"--runtime-env-agent-port={free_port()}")
        node = [RAY, "start", f"--address=127.0.0.1:{port}", '--resources={"bench_slot": 1}', *common, *ports]
        subprocess.run(node, env=env, check=True, capture_output=True)
    return f"127.0.0.1:{port}"


def summary(results: Path) -> str:
    records = [json.loads(p.read_text()) for p in results.glob("*/*/*.json")]
    own = sum(r["wall_s"] for r in records)
    text = f"runs {len(records)}, their own wall {own:.1f} s"
    spans: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        if r.get("placement"):
            p = r["placement"]
            spans.setdefault(p["node_id"], []).append((p["started_unix"], p["finished_unix"]))
    if spans:
        gaps = [b[0] - a[1] for s in spans.values() for a, b in itertools.pairwise(sorted(s))]
        first = min(s for v in spans.values() for s, _ in v)
        last = max(f for v in spans.values() for _, f in v)
        gap = sum(gaps) / max(len(gaps), 1)
        text += f", {len(spans)} node(s), mean gap {gap:.3f} s, first-to-last {last - first:.1f} s"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model" if (work / "model" / "config.json").exists() else build_tiny_bert(work / "model")
    (work / "data" / "squad").mkdir(parents=True, exist_ok=True)
    (work / "data" / "squad" / "dev-v1.1.json").write_text(json.dumps(squad_json(CONTEXTS, "dev")))
    (work / "data" / "squad" / "train-subset-v1.1.json").write_text(json.dumps(squad_json(CONTEXTS[::-1], "train")))
    rows = [{"name": "baseline"}, {"name": "int8-dynamic"}, {"name": "prune-magnitude"}]
    suite = write_suite(work / "tiny.yaml", model, work / "data", compressors=rows, batch_sizes=[1, 2])
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", RAY_AUTH_MODE="token")
    env.pop("RAY_ADDRESS", None)
    configurations: list[tuple[str, int | None]] = [
        ("local", None),
        ("ray-private", 0),
        ("ray-1node", 1),
        ("ray-2node", 2),
    ]
    try:
        for repeat, (name, nodes) in itertools.product(range(1, args.repeat + 1), configurations):
            subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
            flags = ["--limit", "6", "--quick", "--force", "--results-dir", str(work / name)]
            if nodes is not None:
                flags += ["--launcher", "ray"] + (["--address", start_cluster(nodes, env)] if nodes else [])
            start = time.perf_counter()
            command = [sys.executable, "-m", "bench", "run", str(suite), *flags]
            done = subprocess.run(command, env=env, capture_output=True)
            wall = time.perf_counter() - start
            found = summary(work / name)
            print(f"{name:12s} #{repeat}  exit {done.returncode}  command {wall:5.1f} s  ({found})", flush=True)
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
