import json
from pathlib import Path

import pytest

from bench.core.latency import LatencySettings, measure_latency
from bench.core.metrics import MetricValue
from bench.core.records import (
    SCHEMA_VERSION,
    Accuracy,
    RecordError,
    RunRecord,
    Status,
    load_record,
    save_record,
)
from bench.core.shape import Shape
from bench.core.sources import Source
from bench.core.spec import RunSpec
from bench.core.suite import CompressorConfig, MeasurementConfig, ModelConfig, TaskConfig


def make_spec(compressor: str = "baseline", key: str = "k1") -> RunSpec:
    return RunSpec(
        suite="s",
        model=ModelConfig(id="m"),
        model_source=Source("/m", True),
        task=TaskConfig(name="qa", dataset="squad", limit=3),
        dataset_source=Source("/d.json", True),
        compressor=CompressorConfig(name=compressor),
        device="cpu",
        shape=Shape(batch_size=1, sequence_length=8),
        seed=0,
        quick=True,
        measurement=MeasurementConfig(),
        threads=1,
        group="g",
        key=key,
    )


def make_record(**kw: object) -> RunRecord:
    lat = measure_latency(
        lambda x: x, [1, 2], LatencySettings(0, 3, 0.0, 10, 1.0), Shape(batch_size=1, sequence_length=8), "test"
    )
    fields: dict[str, object] = {
        "status": Status.OK,
        "spec": make_spec(),
        "machine": "m1",
        "bench_version": "0",
        "started_at": "t0",
        "finished_at": "t1",
        "wall_s": 1.0,
        "accuracy": Accuracy(metrics={"f1": MetricValue(value=50.0)}, n_examples=3),
        "latency": {"forward": lat},
    }
    fields.update(kw)
    return RunRecord.model_validate(fields)


def test_round_trip(tmp_path: Path) -> None:
    record = make_record()
    path = save_record(record, tmp_path)
    assert path.name == "k1.json"
    loaded = load_record(path)
    assert loaded == record
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["k1.json"]  # no temporary file left behind


def test_raw_samples_are_kept(tmp_path: Path) -> None:
    loaded = load_record(save_record(make_record(), tmp_path))
    assert len(loaded.latency["forward"].samples_ms) == loaded.latency["forward"].stats.n == 3


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = save_record(make_record(), tmp_path)
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="newer than this bench"):
        load_record(path)


def test_garbage_is_a_record_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RecordError, match="unreadable"):
        load_record(bad)
    bad.write_text(json.dumps({"schema_version": 1, "status": "ok"}))
    with pytest.raises(RecordError, match="invalid record"):
        load_record(bad)


def test_older_schema_is_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.core import records

    path = save_record(make_record(), tmp_path)
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION - 1
    data["old_name"] = data.pop("notes")
    path.write_text(json.dumps(data))

    def rename(d: dict[str, object]) -> dict[str, object]:
        d["notes"] = d.pop("old_name")
        return d

    monkeypatch.setitem(records.MIGRATIONS, SCHEMA_VERSION - 1, rename)
    assert load_record(path).notes == []


def test_supersede_keeps_the_old_record_out_of_sight(tmp_path: Path) -> None:
    from bench.core.records import iter_record_files, supersede, write_predictions

    save_record(make_record(), tmp_path)
    write_predictions(tmp_path / "k1.predictions.jsonl", [{"id": "a", "prediction": "x"}])
    moved = supersede(tmp_path, "k1", "20260101T000000Z")
    assert moved is not None and load_record(moved).status == Status.OK
    assert (moved.parent / "k1.predictions.jsonl").exists()
    assert not (tmp_path / "k1.json").exists()
    assert list(iter_record_files(tmp_path)) == []  # hidden folders hold no current records
    assert supersede(tmp_path, "k1", "again") is None


def test_records_from_other_hardware_are_not_reused() -> None:
    from bench.core.environment import capture
    from bench.reuse import same_machine

    here = capture()
    record = make_record(environment=here)
    assert same_machine(record, here)
    elsewhere = make_record(environment=here.model_copy(update={"cpu_model": "Some Other CPU"}))
    assert not same_machine(elsewhere, here)
