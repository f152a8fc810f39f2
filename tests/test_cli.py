"""The command line: exit codes, one-line errors, and no torch import where none is needed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, write_suite


def bench(*args: str, cwd: Path = REPO, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom bench.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'transformers' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "bench" in result.stdout and "report" in result.stdout


def test_list_shows_builtins() -> None:
    result = bench("list")
    assert result.returncode == 0
    assert "int8-dynamic" in result.stdout and "qa" in result.stdout


def test_bad_suite_is_one_line_and_exit_2(tmp_path: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text("model: {id: x}\ntask: {name: qa, dataset: squad}\ncompressors: [{name: int8-dynamc}]\n")
    for command in ("validate", "run"):
        result = bench(command, str(suite))
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "did you mean 'int8-dynamic'" in lines[0]


def test_missing_suite_and_missing_model(tmp_path: Path, tiny_squad_dir: Path) -> None:
    result = bench("validate", str(tmp_path / "none.yaml"))
    assert result.returncode == 2 and "suite file not found" in result.stderr
    suite = write_suite(tmp_path / "s.yaml", tmp_path / "no-such-model", tiny_squad_dir)
    result = bench("run", str(suite))
    assert result.returncode == 2
    assert "model" in result.stderr and "not found: looked in" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_data_dir(tmp_path: Path, tiny_model_dir: Path) -> None:
    suite = write_suite(tmp_path / "s.yaml", tiny_model_dir, tmp_path / "nowhere")
    result = bench("validate", str(suite))
    assert result.returncode == 2
    assert "data directory from the suite's data_dir does not exist" in result.stderr


def test_validate_reports_the_plan(tiny_suite: Path) -> None:
    result = bench("validate", str(tiny_suite))
    assert result.returncode == 0, result.stderr
    assert "2 runs" in result.stdout
    assert "dev-v1.1.json" in result.stdout and "train-subset-v1.1.json" in result.stdout


def test_report_of_nothing_is_bad_input(tmp_path: Path) -> None:
    result = bench("report", str(tmp_path))
    assert result.returncode == 2 and "no readable records" in result.stderr
    result = bench("report", str(tmp_path / "missing"))
    assert result.returncode == 2


def test_report_does_not_import_torch(tmp_path: Path) -> None:
    from bench.core.records import save_record

    from .test_records import make_record

    save_record(make_record(), tmp_path)
    out = str(tmp_path / "out")
    code = (
        "import sys\nfrom bench.cli import main\n"
        f"assert main(['report', {str(tmp_path)!r}]) == 0\n"
        f"assert main(['report', {str(tmp_path)!r}, '-o', {out!r}, '--format', 'html,md,csv,parquet']) == 0\n"
        f"assert main(['compare', {str(tmp_path)!r}, {str(tmp_path)!r}, '--fail-on', 'latency.p50:+5%']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'transformers' not in sys.modules, 'transformers imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "| baseline | ok |" in result.stdout


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_non_positive_limit(tiny_suite: Path, limit: str) -> None:
    result = bench("run", str(tiny_suite), "--limit", limit)
    assert result.returncode == 2
    assert json.dumps(limit).strip('"') in result.stderr


def test_hub_model_offline_is_one_clear_line(tmp_path: Path, tiny_squad_dir: Path) -> None:
    suite = write_suite(tmp_path / "hub.yaml", Path("someorg/not-cached-model"), tiny_squad_dir)
    suite.write_text(suite.read_text().replace(str(Path("someorg/not-cached-model")), "someorg/not-cached-model"))
    result = bench("validate", str(suite))
    assert result.returncode == 2
    assert "not in the local Hugging Face cache" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_only_names_a_row_of_the_suite(tiny_suite: Path) -> None:
    result = bench("run", str(tiny_suite), "--only", "int8-dynamc")
    assert result.returncode == 2
    assert "--only int8-dynamc: no such compressor row" in result.stderr
