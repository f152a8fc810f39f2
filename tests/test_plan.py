from pathlib import Path

from bench.config import load_suite
from bench.core.sources import Source
from bench.plan import expand

from .conftest import write_suite


def runs(path: Path, **kw: object) -> list:
    return expand(
        load_suite(path),
        model_source=Source("/m", True),
        dataset_source=Source("/d", True),
        calibration_source=None,
        threads=2,
        **kw,
    )


def test_grid_expansion_and_baseline_first(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path / "s.yaml",
        tmp_path,
        tmp_path,
        compressors=[{"name": "int8-dynamic"}, {"name": "baseline"}],
        batch_sizes=[1, 4],
        sequence_lengths=[128, 384],
    )
    specs = runs(path)
    assert len(specs) == 2 * 2 * 2
    groups: dict[str, list[str]] = {}
    for spec in specs:
        groups.setdefault(spec.group, []).append(spec.compressor.name)
    assert len(groups) == 4
    assert all(names == ["baseline", "int8-dynamic"] for names in groups.values())


def test_keys_are_stable_and_sensitive(tmp_path: Path) -> None:
    path = write_suite(tmp_path / "s.yaml", tmp_path, tmp_path)
    first = [s.key for s in runs(path)]
    assert first == [s.key for s in runs(path)]
    assert first[0].startswith("baseline__cpu__bs2__seq64__")
    assert len(set(first)) == len(first)
    assert [s.key for s in runs(path, limit=3)] != first
    quick = runs(path, quick=True)
    assert [s.key for s in quick] != first
    assert quick[0].measurement.min_duration_s == 0


def test_compressor_config_changes_the_key(tmp_path: Path) -> None:
    a = write_suite(tmp_path / "a.yaml", tmp_path, tmp_path, compressors=[{"name": "int8-dynamic"}])
    b = write_suite(
        tmp_path / "b.yaml",
        tmp_path,
        tmp_path,
        compressors=[{"name": "int8-dynamic", "config": {"per_channel": False}}],
    )
    assert runs(a)[0].key != runs(b)[0].key
    assert runs(a)[0].group == runs(b)[0].group
