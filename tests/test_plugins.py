"""A third-party plugin package, installed and run through its entry point."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.records import Status, load_record

from .conftest import REPO, install_plugin, write_suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(REPO / "examples" / "bench-plugin-example", tmp_path_factory.mktemp("site"))


def bench_with(plugin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env, timeout=600)


def test_installed_plugin_is_listed(plugin_path: Path) -> None:
    result = bench_with(plugin_path, "list")
    assert result.returncode == 0, result.stderr
    assert "example-bf16-embeddings" in result.stdout and "bench-plugin-example" in result.stdout


def test_installed_plugin_runs(plugin_path: Path, tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path) -> None:
    suite = write_suite(
        tmp_path / "plugin.yaml",
        tiny_model_dir,
        tiny_squad_dir,
        compressors=[{"name": "baseline"}, {"name": "example-bf16-embeddings"}],
    )
    result = bench_with(plugin_path, "run", str(suite), "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 0, result.stdout + result.stderr
    path = next((tmp_path / "r").rglob("example-bf16-embeddings__*.json"))
    record = load_record(path)
    assert record.status == Status.OK
    assert record.verification.passed and record.verification.checks["dtype"] == "bfloat16"
    assert record.size.census_after.dtypes.get("bfloat16", 0) > 0


def test_plugin_missing_without_the_package(tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path) -> None:
    suite = write_suite(
        tmp_path / "p.yaml", tiny_model_dir, tiny_squad_dir, compressors=[{"name": "example-bf16-embeddings"}]
    )
    result = subprocess.run([sys.executable, "-m", "bench", "validate", str(suite)], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown compressor 'example-bf16-embeddings'" in result.stderr
