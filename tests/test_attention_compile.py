"""Attention implementations as a measured choice, and the compile compressor."""

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from bench.config import load_suite
from bench.core.attention import executed, unsupported_by_model, unsupported_here
from bench.core.compilation import RecompileWatch
from bench.core.devices import Device
from bench.core.latency import LatencySettings, measure_latency
from bench.core.launcher import RunOptions
from bench.core.model import Compilation
from bench.core.records import Status, load_record
from bench.core.shape import Shape
from bench.launchers.sequence import plan
from bench.validate import resolve

from .conftest import TinyRun
from .test_compressor_family import apply, logits


@pytest.mark.parametrize("requested", ["eager", "sdpa"])
def test_the_implementation_read_back_is_the_requested_one(tiny_run: TinyRun, requested: str) -> None:
    model = tiny_run.task.load_model(tiny_run.source, "cpu", attn_implementation=requested)
    assert model.attention_implementation() == requested
    assert executed(model.config) == requested


def test_eager_and_sdpa_agree(tiny_run: TinyRun) -> None:
    batch = tiny_run.context().example_batch()
    eager = tiny_run.task.load_model(tiny_run.source, "cpu", attn_implementation="eager").forward(batch)
    sdpa = tiny_run.task.load_model(tiny_run.source, "cpu", attn_implementation="sdpa").forward(batch)
    assert torch.allclose(eager["start_logits"], sdpa["start_logits"], atol=1e-4)


def test_flash_attention_needs_cuda_and_its_package() -> None:
    assert unsupported_here("flash_attention_2", Device("cpu")) == "flash_attention_2 runs on CUDA only"
    assert unsupported_here("sdpa", Device("cpu")) is None and unsupported_here(None, Device("cpu")) is None


def test_a_family_without_sdpa_is_named(tmp_path: Path) -> None:
    from transformers import LongformerConfig

    LongformerConfig(num_hidden_layers=1).save_pretrained(tmp_path)
    reason = unsupported_by_model("sdpa", str(tmp_path), None)
    assert reason is not None and reason.startswith("LongformerModel has no sdpa attention")
    assert unsupported_by_model("eager", str(tmp_path), None) is None


def _rows_suite(tiny_suite: Path, rows: list[dict[str, Any]], **model: Any) -> Path:
    data = yaml.safe_load(tiny_suite.read_text())
    data["compressors"] = rows
    data["model"].update(model)
    tiny_suite.write_text(yaml.safe_dump(data))
    return tiny_suite


def test_rows_may_set_their_own_attention_and_keep_older_keys(tiny_suite: Path, tmp_path: Path) -> None:
    plain = {
        spec.compressor.display_name: spec
        for spec in plan(resolve(load_suite(tiny_suite), tiny_suite), RunOptions(results_dir=tmp_path))
    }
    rows = [
        {"name": "baseline"},
        {"name": "int8-dynamic"},
        {"name": "baseline", "label": "eager", "attention": "eager"},
    ]
    specs = plan(resolve(load_suite(_rows_suite(tiny_suite, rows)), tiny_suite), RunOptions(results_dir=tmp_path))
    by_name = {spec.compressor.display_name: spec for spec in specs}
    assert by_name["baseline"].key == plain["baseline"].key  # no attention set: the same keys as before
    assert by_name["baseline"].is_baseline and not by_name["eager"].is_baseline
    assert by_name["eager"].attention == "eager" and by_name["baseline"].attention is None
    assert len({s.group for s in specs}) == 1


@pytest.mark.slow
def test_a_run_records_the_attention_it_executed(tiny_suite: Path, tmp_path: Path) -> None:
    from bench.cli import main

    rows = [{"name": "baseline"}, {"name": "baseline", "label": "eager", "attention": "eager"}]
    suite = _rows_suite(tiny_suite, rows, attention="sdpa")
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r"), "--limit", "4", "--quick"]) == 0
    records = {r.spec.compressor.display_name: r for r in map(load_record, (tmp_path / "r").rglob("*.json"))}
    assert records["baseline"].execution is not None and records["baseline"].execution.attention == "sdpa"
    assert records["eager"].execution is not None and records["eager"].execution.attention == "eager"
    assert records["eager"].execution.attention_requested == "eager"
    assert records["eager"].agreement is not None  # compared with the sdpa baseline


@pytest.mark.slow
def test_compile_matches_eager_and_reports_its_compile_time(tiny_run: TinyRun) -> None:
    reference = logits(tiny_run.model(), tiny_run)
    out, verdict, ctx, _ = apply(tiny_run, "compile")
    assert verdict.passed, verdict.summary
    assert out.compilation is not None and out.compilation.graphs >= 1 and out.compilation.seconds > 0
    assert ctx.facts["compile"]["graphs"] == out.compilation.graphs
    assert torch.allclose(logits(out, tiny_run), reference, atol=1e-4)


@pytest.mark.slow
def test_recompilation_while_timed_is_counted(tiny_run: TinyRun) -> None:
    out, _, ctx, _ = apply(tiny_run, "compile", {"dynamic": False})
    batch = ctx.example_batch()
    shorter = {name: tensor[:, :40] for name, tensor in batch.items()}
    watch = RecompileWatch()
    settings = LatencySettings(0, 4, 0.0, 4, 60.0, timed_region=watch.region)
    same = measure_latency(out.forward, [batch], settings, Shape(batch_size=2, sequence_length=64), "t")
    assert watch.built == 0 and len(same.samples_ms) == 4
    measure_latency(out.forward, [batch, shorter], settings, Shape(batch_size=2, sequence_length=64), "t")
    assert watch.built >= 1


def test_a_model_that_compiled_nothing_fails_verification(tiny_run: TinyRun) -> None:
    from bench.core.census import take_census
    from bench.core.registry import COMPRESSORS

    model = tiny_run.model()
    compressor = COMPRESSORS.load("compile").from_mapping({})
    assert not compressor.verify(take_census(model.tensors()), model).passed
    model.compilation = Compilation("default", None, 1.0, 0)
    assert not compressor.verify(take_census(model.tensors()), model).passed


def test_compile_is_the_last_step_of_a_chain(tiny_suite: Path) -> None:
    from bench.core.errors import ConfigError

    rows = [{"name": "baseline"}, {"chain": [{"name": "compile"}, {"name": "int8-dynamic"}]}]
    with pytest.raises(ConfigError, match="compile"):
        resolve(load_suite(_rows_suite(tiny_suite, rows)), tiny_suite)


@pytest.mark.slow
def test_a_compiled_run_stores_its_compile_time(tiny_suite: Path, tmp_path: Path) -> None:
    from bench.cli import main

    suite = _rows_suite(tiny_suite, [{"name": "baseline"}, {"name": "compile"}])
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r"), "--limit", "4", "--quick"]) == 0
    records = {r.spec.compressor.display_name: r for r in map(load_record, (tmp_path / "r").rglob("*.json"))}
    compiled = records["compile"]
    assert compiled.status == Status.OK, compiled.error
    assert compiled.execution is not None and compiled.execution.compiled
    assert compiled.execution.compile_s is not None and compiled.execution.compile_s > 0
    assert compiled.execution.graphs_compiled_while_timing == 0
    assert records["baseline"].execution is not None and not records["baseline"].execution.compiled


def test_a_compile_failure_is_one_line_naming_the_torch_error(
    tiny_run: TinyRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compressors.compile import CompileError

    def broken(function: object, **settings: object) -> object:
        def call(*args: object, **kwargs: object) -> object:
            raise RuntimeError("inductor: C++ compiler not found\nlong traceback text")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(CompileError) as info:
        apply(tiny_run, "compile", {"mode": "max-autotune"})
    assert str(info.value) == "torch.compile (max-autotune) failed: RuntimeError: inductor: C++ compiler not found"


def test_torchao_int8_weights_read_back_as_int8(tiny_run: TinyRun) -> None:
    out, verdict, _, _ = apply(tiny_run, "int8-dynamic", {"backend": "torchao"})
    assert verdict.passed, verdict.summary
    executed = out.executed_precision()
    assert executed is not None and executed.main == "int8" and executed.contradiction("int8") is None
