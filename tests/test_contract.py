"""The plugin contract at its boundaries: the registry, chains, what compress/verify must return, records."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.chain import Step, apply_chain, chain_problem
from bench.core.census import Census, take_census
from bench.core.compressor import CompressContext, Compressor, Trait, Verification
from bench.core.errors import PluginContractError, SuiteWarning
from bench.core.model import Batch, ModelHandle
from bench.core.records import SCHEMA_VERSION, RunRecord, migrate
from bench.core.registry import COMPRESSORS, PluginEntry, PluginError, Registry
from bench.core.settings import PluginConfig
from bench.core.suite import TaskConfig
from bench.failure import error_info, plugin_files

GOLDEN_RECORDS = Path(__file__).parent / "golden" / "records"


class ArrayModel(ModelHandle):
    """A model that is one numpy weight; `kind` stands for its runtime."""

    runtime = "arrays"

    def __init__(self, weight: np.ndarray) -> None:
        super().__init__(tokenizer=None, device="cpu")
        self.weight = weight

    def forward(self, batch: Batch) -> Mapping[str, Any]:
        return {}

    def save(self, directory: Path) -> list[Path]:
        return []

    def tensors(self) -> Iterator[tuple[str, Any]]:
        yield "weight", self.weight


class CastWeights(Compressor):
    """Stores the weight in `dtype`; when `proves`, its proof is that dtype (else it claims success)."""

    name = "test-cast"
    requires = frozenset()

    def __init__(self, dtype: type[np.generic], proves: bool) -> None:
        super().__init__(PluginConfig())
        self.dtype, self.proves = dtype, proves

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        assert isinstance(model, ArrayModel)
        return ArrayModel(model.weight.astype(self.dtype))

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        dtypes = take_census(after.tensors()).dtypes
        if not self.proves:
            return Verification(passed=True, summary="exported")
        return Verification(passed=np.dtype(self.dtype).name in dtypes, summary=f"dtypes {sorted(dtypes)}")


def int8_weights() -> CastWeights:
    return CastWeights(np.int8, proves=True)


def back_to_float() -> CastWeights:
    """A later step that silently undoes int8 (as an export to float would)."""
    return CastWeights(np.float32, proves=False)


class ReturnsNone(Compressor):
    name = "test-none"
    requires = frozenset()

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        return None  # type: ignore[return-value]


class ClaimsNothing(Compressor):
    name = "test-silent"
    requires = frozenset()

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        return model


def context(tmp_path: Path) -> CompressContext:
    def unused(*args: object, **kwargs: object) -> Any:
        raise AssertionError("not used")

    from bench.core.shape import Shape
    from bench.core.sources import Source

    return CompressContext(
        device="cpu",
        seed=0,
        workdir=tmp_path,
        threads=1,
        cpu_flags=frozenset(),
        task=unused,  # type: ignore[arg-type]
        shape=Shape(batch_size=1, sequence_length=8),
        model_source=Source("/m", True),
        calibration_split="train",
        reload=unused,
        example_batch=unused,
        calibration_data=unused,
        training_examples=unused,
        cache_dir=tmp_path,
    )


def model() -> ArrayModel:
    return ArrayModel(np.arange(1, 9, dtype=np.float32))


def test_a_claim_undone_by_a_later_step_fails_the_chain(tmp_path: Path) -> None:
    steps = [Step("test-int8", int8_weights()), Step("test-float", back_to_float())]
    _, verdict = apply_chain(model(), steps, context(tmp_path))
    assert not verdict.passed
    assert "test-int8: undone by a later step" in verdict.summary


def test_a_claim_that_survives_the_chain_passes(tmp_path: Path) -> None:
    steps = [Step("test-float", back_to_float()), Step("test-int8", int8_weights())]
    final, verdict = apply_chain(model(), steps, context(tmp_path))
    assert verdict.passed and verdict.proven and take_census(final.tensors()).dtypes == {"int8": 8}


def test_an_expected_undo_is_a_note_not_a_failure(tmp_path: Path) -> None:
    class Tolerant(CastWeights):
        claim_survives_chain = False

    ctx = context(tmp_path)
    steps = [Step("test-int8", Tolerant(np.int8, proves=True)), Step("test-float", back_to_float())]
    _, verdict = apply_chain(model(), steps, ctx)
    assert verdict.passed and any("undone by a later step" in n for n in ctx.notes)


def test_compress_returning_none_names_the_plugin(tmp_path: Path) -> None:
    with pytest.raises(PluginContractError, match=r"compressor 'test-none' \(.*ReturnsNone\) broke the plugin"):
        apply_chain(model(), [Step("test-none", ReturnsNone(PluginConfig()))], context(tmp_path))


def test_the_default_verify_is_marked_unproven(tmp_path: Path) -> None:
    _, verdict = apply_chain(model(), [Step("test-silent", ClaimsNothing(PluginConfig()))], context(tmp_path))
    assert verdict.passed and not verdict.proven


def test_chains_are_checked_against_declared_traits() -> None:
    onnx = Step("onnx", COMPRESSORS.load("onnx").from_mapping({}))
    prune = Step("prune-magnitude", COMPRESSORS.load("prune-magnitude").from_mapping({}))
    int8 = Step("int8-dynamic", COMPRESSORS.load("int8-dynamic").from_mapping({}))
    bnb = Step("bnb-nf4", COMPRESSORS.load("bnb-nf4").from_mapping({}))
    baseline = Step("baseline", COMPRESSORS.load("baseline").from_mapping({}))
    assert chain_problem([prune, int8]) is None
    assert chain_problem([baseline, bnb]) is None
    problem = chain_problem([onnx, prune])
    assert (
        problem is not None
        and "an eager PyTorch model, which it does not get after onnx" in problem
        and "after onnx" in problem
    )
    problem = chain_problem([int8, prune])
    assert problem is not None and "float torch.nn.Linear layers" in problem
    problem = chain_problem([prune, bnb])
    assert problem is not None and "bnb-nf4 needs the model as loaded" in problem
    assert Trait.FLOAT_LINEAR in prune.compressor.requires and Trait.PYTORCH in prune.compressor.requires


def registry_with(entries: dict[str, list[PluginEntry]]) -> Registry[Compressor]:
    registry: Registry[Compressor] = Registry("bench.compressors", "compressor", Compressor)
    registry.__dict__["_candidates"] = entries  # the cached entry-point listing
    return registry


def entry(name: str, target: str, dist: str = "pkg") -> PluginEntry:
    return PluginEntry(name=name, group="bench.compressors", target=target, distribution=dist, version="1.0")


def test_a_clash_fails_only_the_name_that_clashes() -> None:
    registry = registry_with(
        {
            "baseline": [entry("baseline", "compressors.baseline:Baseline", "bench")],
            "quant": [entry("quant", "a.quant:Q", "pkg-a"), entry("quant", "b.quant:Q", "pkg-b")],
        }
    )
    assert registry.load("baseline").name == "baseline"
    assert list(registry.clashes()) == ["quant"]
    with pytest.raises(PluginError, match=r"registered by more than one installed package: a.quant:Q \(pkg-a 1.0\)"):
        registry.load("quant")


def test_loading_checks_the_class_and_its_name() -> None:
    registry = registry_with(
        {
            "renamed": [entry("renamed", "compressors.baseline:Baseline")],
            "not-a-compressor": [entry("not-a-compressor", "bench.core.settings:PluginConfig")],
        }
    )
    with pytest.raises(PluginError, match=r"declares name = 'baseline'.*must be the same"):
        registry.load("renamed")
    with pytest.raises(PluginError, match=r"is not a subclass of bench\.core\.compressor\.Compressor"):
        registry.load("not-a-compressor")
    with pytest.raises(PluginError, match="unknown compressor 'renamd' \\(did you mean 'renamed'"):
        registry.load("renamd")


def test_task_options_is_a_deprecated_alias_of_config() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = TaskConfig.model_validate({"name": "qa", "dataset": "squad", "options": {"n_best": 5}})
    assert task.config == {"n_best": 5}
    assert any(issubclass(w.category, SuiteWarning) and "task.config" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="give `config` only"):
        TaskConfig.model_validate({"name": "qa", "dataset": "squad", "options": {}, "config": {}})


def test_schema_1_records_migrate_to_typed_sources_and_shapes() -> None:
    path = next(GOLDEN_RECORDS.rglob("*.json"))
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["schema_version"] == 1
    record = RunRecord.model_validate(migrate(raw, path))
    assert record.schema_version == SCHEMA_VERSION
    assert record.spec.model_source.local and record.spec.batch_size >= 1
    assert all(r.shape == record.spec.shape for r in record.latency.values())


def test_an_error_names_the_plugin_file_and_line(tmp_path: Path) -> None:
    class Broken(Compressor):
        name = "test-broken"

        def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
            return {"layer": 1}["layer.99"]  # type: ignore[return-value]

    plugin = Broken(PluginConfig())
    try:
        plugin.compress(model(), context(tmp_path))
    except KeyError as exc:
        info = error_info(exc, "compress", plugin_files([plugin]), "/tmp/run.log")
    assert info.location is not None and info.location.startswith(__file__)
    line = info.describe()
    assert line.startswith("compress: KeyError: 'layer.99' (at ") and line.endswith("(log: /tmp/run.log)")


def test_reports_label_proofs_verified_failed_and_unverified() -> None:
    from bench.report.notes import table_notes

    from .test_records import make_record, make_spec

    def record(name: str, verification: Verification) -> RunRecord:
        return make_record(spec=make_spec(name, key=name), verification=verification)

    notes = table_notes(
        [
            record("baseline", Verification(passed=True, summary="nothing claimed: the uncompressed model")),
            record("test-int8", Verification(passed=True, summary="int8 weights")),
            record("test-broken", Verification(passed=False, summary="expected int8 weights, found float32")),
            record("test-silent", Verification(passed=True, summary="nothing claimed", proven=False)),
        ]
    )
    assert "test-int8: verified: int8 weights" in notes
    assert "test-broken: verification FAILED: expected int8 weights, found float32" in notes
    assert any(n.startswith("test-silent: UNVERIFIED") for n in notes)
    assert not any(n.startswith("baseline:") for n in notes)
