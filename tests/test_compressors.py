"""Compressors on the tiny model: the effect each claims is really there."""

from pathlib import Path
from typing import Any

import pytest
import torch

from bench.core.census import take_census
from bench.core.registry import COMPRESSORS
from bench.core.sources import Source
from bench.runtimes.torch import TorchModel
from bench.tasks.qa import QATask

from .conftest import TinyRun


def load(tiny_model_dir: Path) -> TorchModel:
    model = QATask.from_mapping({}).load_model(Source(str(tiny_model_dir), True), "cpu")
    assert isinstance(model, TorchModel)
    return model


def test_builtins_are_registered_through_entry_points() -> None:
    names = COMPRESSORS.names()
    assert {"baseline", "int8-dynamic"} <= set(names)
    entry = COMPRESSORS.entry("int8-dynamic")
    assert entry.target == "compressors.int8_dynamic:Int8Dynamic" and entry.distribution == "bench"


def test_baseline_is_identity(tiny_model_dir: Path, tmp_path: Path, tiny_run: TinyRun) -> None:
    model = load(tiny_model_dir)
    out = COMPRESSORS.load("baseline").from_mapping({}).compress(model, tiny_run.context())
    assert out is model


@pytest.mark.parametrize("config", [{}, {"per_channel": False}])
def test_int8_dynamic_quantizes_every_linear(
    tiny_model_dir: Path, tmp_path: Path, tiny_run: TinyRun, config: dict[str, Any]
) -> None:
    model = load(tiny_model_dir)
    before = take_census(model.tensors())
    comp = COMPRESSORS.load("int8-dynamic").from_mapping(config)
    ctx = tiny_run.context()
    out = comp.compress(model, ctx)
    verdict = comp.verify(before.model_dump(), out)
    assert verdict.passed, verdict.summary
    assert verdict.checks["float_linear"] == 0
    assert verdict.checks["int8_linear"] == 2 * 6 + 1 + 0  # 6 Linear per layer, the QA head (no pooler)
    after = take_census(out.tensors())
    assert after.dtypes.get("qint8", 0) > 0.5 * before.parameters - after.dtypes.get("float32", 0)
    files = out.save(tmp_path / "saved")
    weights = sum(p.stat().st_size for p in files if p.suffix == ".pt")
    baseline_bytes = sum(p.stat().st_size for p in model.save(tmp_path / "base") if p.suffix == ".safetensors")
    assert weights < baseline_bytes
    batch = {
        "input_ids": torch.ones(1, 16, dtype=torch.long),
        "attention_mask": torch.ones(1, 16, dtype=torch.long),
    }
    assert out.forward(batch)["start_logits"].shape == (1, 16)
    assert any("quantized engine" in n for n in ctx.notes)


def test_int8_dynamic_skip_keeps_modules_float(tiny_model_dir: Path, tmp_path: Path, tiny_run: TinyRun) -> None:
    model = load(tiny_model_dir)
    comp = COMPRESSORS.load("int8-dynamic").from_mapping({"skip": [r"layer\.\d+\.output\.dense$"]})
    out = comp.compress(model, tiny_run.context())
    verdict = comp.verify(take_census(out.tensors()), out)
    assert verdict.passed
    assert verdict.checks["float_linear"] == 2


def test_int8_dynamic_that_quantizes_nothing_fails_verification(
    tiny_model_dir: Path, tmp_path: Path, tiny_run: TinyRun
) -> None:
    comp = COMPRESSORS.load("int8-dynamic").from_mapping({"skip": ["."]})
    out = comp.compress(load(tiny_model_dir), tiny_run.context())
    assert not comp.verify(take_census(out.tensors()), out).passed


def test_int8_without_vnni_is_flagged(tiny_model_dir: Path, tmp_path: Path, tiny_run: TinyRun) -> None:
    ctx = tiny_run.context(frozenset({"avx2"}))
    COMPRESSORS.load("int8-dynamic").from_mapping({}).compress(load(tiny_model_dir), ctx)
    assert any("without VNNI" in n for n in ctx.notes)
