"""OpenVINO and NNCF rows on the tiny model, and the executed precision read back from every runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.core.census import take_census
from bench.core.devices import Device
from bench.core.environment import cpu_flags
from bench.core.model import ExecutedPrecision
from bench.core.registry import COMPRESSORS
from bench.worker import precision_problem

from .conftest import TinyRun
from .test_compressor_family import apply, logits

pytest.importorskip("openvino")
pytest.importorskip("nncf")

NATIVE_BF16 = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def test_openvino_fp32_matches_eager_and_executes_f32(tiny_run: TinyRun, tmp_path: Path) -> None:
    out, verdict, ctx, before = apply(tiny_run, "openvino")
    assert verdict.passed, verdict.summary
    executed = out.executed_precision()
    assert executed.main == "f32" and executed.total > 0 and "hint f32" in executed.source
    assert torch.allclose(logits(out, tiny_run), logits(tiny_run.model(), tiny_run), atol=1e-4)
    assert ctx.facts["convert_s"] > 0 and ctx.facts["compile_s"] > 0
    files = out.save(tmp_path / "saved")
    assert {p.name for p in files} >= {"model.xml", "model.bin"}
    assert take_census(out.tensors()).parameters >= 0.95 * before.parameters


@pytest.mark.skipif(not NATIVE_BF16, reason="needs a CPU with native bf16")
def test_openvino_bf16_executes_bf16(tiny_run: TinyRun) -> None:
    out, verdict, _, _ = apply(tiny_run, "openvino-bf16")
    assert verdict.passed, verdict.summary
    assert out.executed_precision().main == "bf16"
    assert torch.allclose(logits(out, tiny_run), logits(tiny_run.model(), tiny_run), atol=0.2)


def test_openvino_bf16_is_skipped_without_native_bf16() -> None:
    row = COMPRESSORS.load("openvino-bf16").from_mapping({})
    assert "AVX512-BF16" in (row.unsupported_reason(Device("cpu"), frozenset({"avx2"})) or "")
    assert row.unsupported_reason(Device("cpu"), frozenset({"amx_bf16"})) is None


@pytest.mark.skipif(not NATIVE_BF16, reason="OpenVINO runs bf16 only where the CPU has it")
def test_a_bf16_run_labelled_fp32_is_caught(tiny_run: TinyRun) -> None:
    from compressors.openvino import OpenVino

    class Mislabelled(OpenVino):
        hint = "bf16"  # what OpenVINO does by itself when the hint is left alone

    model = tiny_run.model()
    before = take_census(model.tensors())
    row = Mislabelled(Mislabelled.Config())
    out = row.compress(model, tiny_run.context())
    executed = out.executed_precision()
    assert executed.main == "bf16"
    assert not row.verify(before, out).passed
    problem = precision_problem(row.precision, executed)
    assert problem is not None and "claims f32 but executes bf16" in problem


def test_nncf_int8_quantizes_and_executes_int8(tiny_run: TinyRun) -> None:
    out, verdict, ctx, _ = apply(tiny_run, "nncf-int8", {"calibration_samples": 6})
    assert verdict.passed, verdict.summary
    assert verdict.checks["fake_quantize"] > 0 and out.executed_precision().ops.get("int8", 0) > 0
    ids = ctx.facts["calibration"]["example_ids"]
    assert ids and all(i.startswith("train") for i in ids)  # never evaluation examples
    reference = logits(tiny_run.model(), tiny_run)
    assert torch.nn.functional.cosine_similarity(logits(out, tiny_run).flatten(), reference.flatten(), dim=0) > 0.9


def test_nncf_skip_keeps_the_named_block_in_float(tiny_run: TinyRun) -> None:
    from bench.tune.layers import module_pattern

    _, full, _, _ = apply(tiny_run, "nncf-int8", {"calibration_samples": 6})
    config = {"calibration_samples": 6, "skip": [module_pattern("bert.encoder.layer.1")]}
    _, skipped, ctx, _ = apply(tiny_run, "nncf-int8", config)
    assert skipped.passed and ctx.facts["float_operations"] == config["skip"]
    assert 0 < skipped.checks["fake_quantize"] < full.checks["fake_quantize"]
    assert skipped.checks["executed"].get("f32", 0) > full.checks["executed"].get("f32", 0)


def test_nncf_verification_fails_on_a_float_graph(tiny_run: TinyRun) -> None:
    float_model, _, _, before = apply(tiny_run, "openvino")
    verdict = COMPRESSORS.load("nncf-int8").from_mapping({}).verify(before, float_model)
    assert not verdict.passed and "no FakeQuantize" in verdict.summary


@pytest.mark.parametrize(
    ("name", "config", "main", "has"),
    [
        ("baseline", {}, "f32", "f32"),
        ("bf16", {}, "bf16", "bf16"),
        ("int8-dynamic", {}, "int8", "int8"),
        ("int8-dynamic", {"backend": "onnxruntime"}, None, "int8"),
        ("int8-static", {"calibration_samples": 4}, None, "int8"),
        ("onnx", {}, "f32", "f32"),
    ],
)
def test_every_runtime_reports_what_it_executes(
    tiny_run: TinyRun, name: str, config: dict[str, object], main: str | None, has: str
) -> None:
    out, _, _, _ = apply(tiny_run, name, config)
    executed = out.executed_precision()
    assert executed is not None and executed.ops.get(has, 0) > 0, executed
    if main is not None:
        assert executed.main == main, executed
    assert precision_problem(COMPRESSORS.load(name).precision, executed) is None


def test_claims_are_checked_against_the_execution() -> None:
    f32 = ExecutedPrecision(ops={"f32": 10}, source="test")
    mixed = ExecutedPrecision(ops={"int8": 6, "f32": 4}, source="test")
    assert precision_problem("f32", f32) is None and precision_problem("int8", mixed) is None
    assert "no compute operation executes in int8" in (precision_problem("int8", f32) or "")
    assert "claims bf16 but executes f32" in (precision_problem("bf16", f32) or "")
    assert precision_problem(None, f32) is None and precision_problem("f32", None) is None
    assert mixed.label == "int8+f32" and mixed.share("int8") == 0.6


def test_nncf_accuracy_control_validates_on_training_examples(tiny_run: TinyRun) -> None:
    config = {"calibration_samples": 3, "accuracy_control": True, "validation_samples": 3, "max_drop": 5.0}
    _, verdict, ctx, _ = apply(tiny_run, "nncf-int8", config)
    assert verdict.passed, verdict.summary
    control = ctx.facts["accuracy_control"]
    calibration = set(ctx.facts["calibration"]["example_ids"])
    assert control["metric"] == "f1" and control["validation_examples"] == 3
    assert all(i.startswith("train") for i in control["validation_ids"])
    assert not calibration & set(control["validation_ids"])  # validation follows the calibration examples
