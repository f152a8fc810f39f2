"""`bench compare`: matching runs, thresholds, and exit codes for CI."""

import json
import shutil
from pathlib import Path

import pytest

from bench.compare import Threshold, parse_threshold
from bench.core.errors import BenchError
from tests.golden.regenerate import GOLDEN

from .test_cli import bench


def _changed(tmp_path: Path, name: str, edit: str) -> Path:
    """A copy of the golden records with the baselines changed: slower (every raw sample and statistic
    1.2x), noisy (p50 up, but samples that overlap the old ones), less accurate (half the translations
    emptied), or measured in quick mode."""
    folder = tmp_path / name
    shutil.copytree(GOLDEN / "records", folder)
    for path in folder.glob("baseline__*.json"):
        record = json.loads(path.read_text())
        for latency in record["latency"].values():
            if edit == "slower":
                latency["samples_ms"] = [x * 1.2 for x in latency["samples_ms"]]
                latency["stats"] = {
                    k: v * 1.2 if k in ("p50", "p90", "p99", "mean") else v for k, v in latency["stats"].items()
                }
            elif edit == "noisy":
                low, mid, high = sorted(latency["samples_ms"])
                latency["samples_ms"] = [low * 0.9, mid * 1.08, high * 1.1]
                latency["stats"]["p50"] = mid * 1.08
        if edit == "less-accurate" and record["spec"]["task"]["name"] == "translation":
            predictions = path.with_name(record["accuracy"]["predictions_file"])
            rows = [json.loads(line) for line in predictions.read_text().splitlines()]
            for row in rows[::2]:
                row["prediction"] = ""
            predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
            for metric in record["accuracy"]["metrics"].values():
                metric["value"] -= 3.0
        if edit == "quick":
            record["spec"]["quick"] = True
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
    assert result.returncode == 1 and "accuracy.chrf" in result.stdout and "95% interval" in result.stdout
    assert bench("compare", str(GOLDEN / "records"), str(new), "--fail-on", "accuracy.chrf:-4").returncode == 0


def test_a_change_inside_the_noise_is_not_a_regression(tmp_path: Path) -> None:
    new = _changed(tmp_path, "noisy", "noisy")
    result = bench("compare", str(GOLDEN / "records"), str(new), "--fail-on", "latency.p50:+5%")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "within noise" in result.stdout and "regression:" not in result.stdout


def test_runs_measured_under_other_conditions_are_refused_as_a_gate(tmp_path: Path) -> None:
    new = _changed(tmp_path, "quick", "quick")
    result = bench("compare", str(GOLDEN / "records"), str(new), "--fail-on", "latency.p50:+5%")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "not comparable" in result.stderr and "mode: full → quick" in result.stderr
    assert "--allow-mismatch" in result.stderr
    allowed = bench("compare", str(GOLDEN / "records"), str(new), "--fail-on", "latency.p50:+5%", "--allow-mismatch")
    assert allowed.returncode == 0 and "mode: full → quick" in allowed.stdout
    assert bench("compare", str(GOLDEN / "records"), str(new)).returncode == 0  # no gate: a report only


def test_json_output_and_unreadable_records(tmp_path: Path) -> None:
    new = _changed(tmp_path, "slower", "slower")
    (new / "garbage.json").write_bytes(b"\xff\xfe\x00binary")
    (new / "future.json").write_text(json.dumps({"schema_version": 99}))
    result = bench("compare", str(GOLDEN / "records"), str(new), "--fail-on", "latency.p50:+5%", "--json")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["verdict"] == "fail" and payload["failures"]
    assert any(c["crossed"] == "latency.p50:+5%" and c["interval"][0] > 0 for c in payload["changes"])
    assert len(payload["unreadable"]) == 2
    assert "garbage.json: unreadable record" in result.stderr and "newer than this bench" in result.stderr


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    result = bench("compare", str(GOLDEN / "records"), str(tmp_path / "missing"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no such results folder" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no readable records" in bench("compare", str(GOLDEN / "records"), str(empty)).stderr
