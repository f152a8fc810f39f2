"""`bench compare`: matching runs, thresholds, and exit codes for CI."""

import json
import shutil
from pathlib import Path

import pytest

from bench.compare import Threshold, parse_threshold
from bench.errors import BenchError
from tests.golden.regenerate import GOLDEN

from .test_cli import bench


def _changed(tmp_path: Path, name: str, edit: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(GOLDEN / "records", folder)
    for path in folder.glob("baseline__*.json"):
        record = json.loads(path.read_text())
        if edit == "slower":
            for latency in record["latency"].values():
                latency["stats"]["p50"] *= 1.2
        elif edit == "less-accurate":
            for metric in record["accuracy"]["metrics"].values():
                metric["value"] -= 1.0
        path.write_text(json.dumps(record))
    return folder


def test_threshold_parsing_and_direction() -> None:
    slower = parse_threshold("latency.p50:+5%")
    assert slower == Threshold("latency.p50", 5.0, True)
    assert slower.crossed(100.0, 106.0) and not slower.crossed(100.0, 104.0) and not slower.crossed(100, 50)
    lower = parse_threshold("accuracy.f1:-0.5")
    assert lower.crossed(80.0, 79.4) and not lower.crossed(80.0, 79.6) and not lower.crossed(80, 90)
    for bad in ("latency.p50", "latency.p50:5%", "speed:+5%", "accuracy.:+1"):
        with pytest.raises(BenchError):
            parse_threshold(bad)


def test_no_regression_exits_0(tmp_path: Path) -> None:
    result = bench(
        "compare", str(GOLDEN / "records"), str(_changed(tmp_path, "same", "none")), "--fail-on", "latency.p50:+5%"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "latency.p50" in result.stdout and "regression:" not in result.stdout


def test_latency_regression_fails_the_gate(tmp_path: Path) -> None:
    new = _changed(tmp_path, "slower", "slower")
    result = bench("compare", str(GOLDEN / "records"), str(new), "--fail-on", "latency.p50:+5%")
    assert result.returncode == 1
    assert "regression: baseline" in result.stdout and "crosses latency.p50:+5%" in result.stdout
    assert bench("compare", str(GOLDEN / "records"), str(new), "--fail-on", "latency.p50:+25%").returncode == 0
    assert bench("compare", str(GOLDEN / "records"), str(new)).returncode == 0  # no gate: a report only


def test_accuracy_regression_fails_the_gate(tmp_path: Path) -> None:
    new = _changed(tmp_path, "worse", "less-accurate")
    result = bench("compare", str(GOLDEN / "records"), str(new), "--fail-on", "accuracy.chrf:-0.5")
    assert result.returncode == 1 and "accuracy.chrf" in result.stdout
    assert bench("compare", str(GOLDEN / "records"), str(new), "--fail-on", "accuracy.chrf:-2").returncode == 0


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    result = bench("compare", str(GOLDEN / "records"), str(tmp_path / "missing"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no such results folder" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no records found" in bench("compare", str(GOLDEN / "records"), str(empty)).stderr
