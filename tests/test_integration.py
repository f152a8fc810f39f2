"""`bench run` end to end on the tiny model in fresh worker processes, and on the real model."""

import json
import shutil
from pathlib import Path

import pytest

from bench.core.records import Status, load_record, read_predictions

from .conftest import write_suite
from .test_cli import bench

pytestmark = pytest.mark.slow


def records(folder: Path) -> dict[str, object]:
    found = {}
    for path in folder.rglob("*.json"):
        if ".work" in path.parts or path.name.startswith("."):
            continue
        record = load_record(path)
        found[record.spec.compressor.display_name] = record
    return found


def test_run_store_skip_force_and_report(tiny_suite: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    first = bench("run", str(tiny_suite), "--results-dir", str(results))
    assert first.returncode == 0, first.stdout + first.stderr
    stored = records(results)
    assert set(stored) == {"baseline", "int8-dynamic"}
    base, int8 = stored["baseline"], stored["int8-dynamic"]
    for record in (base, int8):
        assert record.status == Status.OK
        assert record.accuracy is not None and record.accuracy.n_examples == 6
        assert {"exact_match", "f1"} <= set(record.accuracy.metrics)
        lat = record.latency["forward"]
        assert lat.stats.n >= 3 and len(lat.samples_ms) == lat.stats.n and lat.cold_ms > 0
        assert record.memory is not None and record.memory.steady_peak and record.memory.load_peak
        assert record.size is not None and record.size.saved is not None and record.size.saved.bytes > 0
        assert record.environment is not None and record.environment.threads == 1
        assert set(record.phases_s) >= {"load", "compress", "latency", "evaluate"}
        folder = next(results.rglob(f"{record.spec.key}.json")).parent
        rows = read_predictions(folder / record.accuracy.predictions_file)
        assert [r["id"] for r in rows] == [f"dev{c}-{q}" for c in range(2) for q in range(3)]
    assert base.agreement is not None and base.agreement.metrics["exact_agreement"].value == 100.0
    assert int8.agreement is not None and int8.agreement.baseline_key == base.spec.key
    assert int8.verification is not None and int8.verification.passed
    assert int8.size.saved.bytes < base.size.saved.bytes
    assert not list(results.rglob(".work/*"))  # working copies of models are cleaned up

    again = bench("run", str(tiny_suite), "--results-dir", str(results))
    assert again.returncode == 0
    assert again.stdout.count("stored") == 2
    assert records(results)["int8-dynamic"].started_at == int8.started_at

    forced = bench("run", str(tiny_suite), "--results-dir", str(results), "--force", "--limit", "2")
    assert forced.returncode == 0
    assert "stored" not in forced.stdout

    report = bench("report", str(results), "-o", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "README.md").read_text()
    assert "| baseline | ok |" in text and "| int8-dynamic | ok |" in text
    assert "(2 examples)" in text and "(6 examples)" in text  # the two limits are separate tables
    assert "%)" in text  # relative deltas against the baseline


def test_failures_become_records_and_the_suite_goes_on(
    tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path
) -> None:
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    suite = write_suite(tmp_path / "broken.yaml", broken, tiny_squad_dir)
    result = bench("run", str(suite), "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    stored = records(tmp_path / "r")
    assert {r.status for r in stored.values()} == {Status.ERROR}
    assert all(r.error and r.error.message and r.error.traceback_tail for r in stored.values())


def test_timeout_is_stored(tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path) -> None:
    suite = write_suite(
        tmp_path / "slow.yaml",
        tiny_model_dir,
        tiny_squad_dir,
        compressors=[{"name": "baseline"}],
        measurement={"timeout_s": 0.5, "threads": 1},
    )
    result = bench("run", str(suite), "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 1
    (record,) = records(tmp_path / "r").values()
    assert record.status == Status.TIMEOUT
    assert "timed out after 0.5 s" in record.error.message


def test_stored_failures_are_retried(tmp_path: Path, tiny_suite: Path) -> None:
    results = tmp_path / "r"
    assert bench("run", str(tiny_suite), "--results-dir", str(results)).returncode == 0
    path = next(p for p in results.rglob("int8-dynamic__*.json"))
    data = json.loads(path.read_text())
    data["status"] = "error"
    path.write_text(json.dumps(data))
    again = bench("run", str(tiny_suite), "--results-dir", str(results))
    assert again.returncode == 0
    assert again.stdout.count("stored") == 1
    assert load_record(path).status == Status.OK
    (previous,) = path.parent.glob(f".superseded/*/{path.name}")  # the earlier record is kept, not lost
    assert load_record(previous).status == Status.ERROR


@pytest.mark.real_data
def test_real_model_on_real_squad(tmp_path: Path, shared_data: Path) -> None:
    suite = write_suite(
        tmp_path / "real.yaml",
        shared_data / "models" / "minilm-l6-squad",
        shared_data,
        name="real",
        task={"name": "qa", "dataset": "squad", "split": "validation", "limit": 30},
        batch_sizes=[1],
        sequence_lengths=[384],
        measurement={"threads": 2, "quick_min_duration_s": 0.5, "quick_warmup": 2, "quick_min_iterations": 5},
    )
    result = bench("run", str(suite), "--quick", "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 0, result.stdout + result.stderr
    stored = records(tmp_path / "r")
    base, int8 = stored["baseline"], stored["int8-dynamic"]
    # SCORES.md: F1 71.7 on the first 100 questions; 30 questions is a noisy slice of that.
    assert 55.0 < base.accuracy.metrics["f1"].value < 95.0
    assert int8.accuracy.metrics["f1"].value > 45.0
    assert int8.agreement.metrics["f1_agreement"].value > 60.0
    assert int8.size.saved.bytes < 0.75 * base.size.saved.bytes


def test_chain_skips_and_calibration_ids_reach_the_records(
    tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path
) -> None:
    suite = write_suite(
        tmp_path / "family.yaml",
        tiny_model_dir,
        tiny_squad_dir,
        compressors=[
            {"name": "baseline"},
            {"name": "fp16"},
            {"name": "int8-static"},
            {"chain": [{"name": "prune-magnitude", "config": {"sparsity": 0.6}}, {"name": "int8-dynamic"}]},
        ],
    )
    result = bench("run", str(suite), "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 0, result.stdout + result.stderr
    stored = records(tmp_path / "r")
    if "avx512_fp16" not in stored["baseline"].environment.cpu_flags:
        assert stored["fp16"].status == Status.SKIPPED
        assert "no native float16" in stored["fp16"].error.message
    chain = stored["prune-magnitude+int8-dynamic"]
    assert chain.status == Status.OK
    assert set(chain.verification.checks) == {"prune-magnitude", "int8-dynamic"}
    assert chain.verification.checks["prune-magnitude"]["measured_sparsity"] == pytest.approx(0.6, abs=0.01)
    static = stored["int8-static"]
    assert static.status == Status.OK
    assert static.compression["calibration"]["example_ids"][0].startswith("train")
    assert static.size.saved.format == "onnx"
    report = bench("report", str(tmp_path / "r"))
    assert "calibrated on 6 training-split examples" in report.stdout
    # the skip's reason, after the phase that decided it (setup); a CPU with AVX512-FP16 runs fp16 instead
    assert "fp16: skipped: setup: fp16 on this CPU" in report.stdout or stored["fp16"].status == Status.OK
