"""Each compressor of the family on the tiny model: its effect is really there."""

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.core.census import take_census
from bench.core.devices import Device
from bench.core.registry import COMPRESSORS
from bench.runtimes.torch import TorchModel

from .conftest import TinyRun


def apply(run: TinyRun, name: str, config: dict[str, Any] | None = None, flags: frozenset[str] | None = None) -> Any:
    model = run.model()
    before = take_census(model.tensors())
    compressor = COMPRESSORS.load(name).from_mapping(config or {})
    ctx = run.context(flags)
    out = compressor.compress(model, ctx)
    verdict = compressor.verify(before, out)
    return out, verdict, ctx, before


def logits(model: Any, run: TinyRun) -> torch.Tensor:
    return model.forward(run.context().example_batch())["start_logits"].float()


def test_bf16_casts_every_float_weight(tiny_run: TinyRun, tmp_path: Path) -> None:
    out, verdict, _ctx, before = apply(tiny_run, "bf16")
    assert verdict.passed, verdict.summary
    assert set(verdict.checks["weight_dtypes"]) == {"bfloat16"}
    saved = sum(p.stat().st_size for p in out.save(tmp_path / "s") if p.suffix == ".safetensors")
    assert saved < 0.6 * 4 * before.parameters
    reference = logits(tiny_run.model(), tiny_run)
    assert torch.allclose(logits(out, tiny_run), reference, atol=0.1)


def test_bf16_without_native_support_is_flagged(tiny_run: TinyRun) -> None:
    _, _, ctx, _ = apply(tiny_run, "bf16", flags=frozenset({"avx2"}))
    assert any("emulated" in n for n in ctx.notes)


def test_fp16_on_cpu_is_skipped_without_fp16_arithmetic() -> None:
    fp16 = COMPRESSORS.load("fp16").from_mapping({})
    assert "no native float16" in fp16.unsupported_reason(Device("cpu"), frozenset({"avx512_bf16"}))
    assert fp16.unsupported_reason(Device("cpu"), frozenset({"avx512_fp16"})) is None


@pytest.mark.parametrize("name", ["bnb-int8", "bnb-nf4"])
def test_bitsandbytes_is_skipped_on_cpu(name: str) -> None:
    reason = COMPRESSORS.load(name).from_mapping({}).unsupported_reason(Device("cpu"), frozenset())
    assert reason is not None and "CUDA" in reason


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("sparsity", [0.3, 0.7])
def test_prune_magnitude_reaches_its_sparsity(tiny_run: TinyRun, scope: str, sparsity: float) -> None:
    out, verdict, ctx, _ = apply(tiny_run, "prune-magnitude", {"sparsity": sparsity, "scope": scope})
    assert verdict.passed, verdict.summary
    assert abs(verdict.checks["measured_sparsity"] - sparsity) <= 0.01
    if scope == "layer":
        assert verdict.checks["min_layer_sparsity"] == pytest.approx(sparsity, abs=0.01)
    assert (out.module.qa_outputs.weight != 0).all()  # the task head is left dense
    assert any("dense kernels" in n for n in ctx.notes)


@pytest.mark.parametrize("importance", ["activation", "magnitude"])
def test_prune_structured_removes_heads_and_neurons(tiny_run: TinyRun, importance: str) -> None:
    out, verdict, ctx, before = apply(
        tiny_run, "prune-structured", {"heads": 0.5, "ffn": 0.5, "importance": importance}
    )
    assert verdict.passed, verdict.summary
    assert verdict.checks["heads_per_layer"] == [2, 2]  # of 4
    assert verdict.checks["ffn_width_per_layer"] == [64, 64]  # of 128
    assert take_census(out.tensors()).parameters < before.parameters
    assert logits(out, tiny_run).shape[-1] == tiny_run.spec.sequence_length
    if importance == "activation":
        assert ctx.facts["calibration"]["example_ids"][0].startswith("train")


def test_distill_trains_a_shallower_student_and_caches_it(tiny_run: TinyRun) -> None:
    config = {"num_layers": 1, "max_steps": 40, "batch_size": 4, "learning_rate": 1e-3, "max_seq_length": 64}
    out, verdict, ctx, _before = apply(tiny_run, "distill", config)
    assert verdict.passed, verdict.summary
    assert verdict.checks["student_layers"] == 1
    assert ctx.facts["train_steps"] == 40 and not ctx.facts["cached"]
    assert ctx.facts["loss_last"] < ctx.facts["loss_first"]
    assert ctx.facts["train_time_s"] > 0
    again, _, ctx2, _ = apply(tiny_run, "distill", config)
    assert ctx2.facts["cached"] and ctx2.facts["loss_last"] == ctx.facts["loss_last"]
    assert torch.allclose(logits(again, tiny_run), logits(out, tiny_run))


def test_distill_rejects_impossible_layers(tiny_run: TinyRun) -> None:
    with pytest.raises(ValueError, match="do not exist"):
        apply(tiny_run, "distill", {"layers": [0, 5]})


def test_onnx_fp32_matches_eager(tiny_run: TinyRun) -> None:
    out, verdict, _, _ = apply(tiny_run, "onnx")
    assert verdict.passed and verdict.checks["int8_operators"] == 0
    assert torch.allclose(logits(out, tiny_run), logits(tiny_run.model(), tiny_run), atol=1e-3)


@pytest.mark.parametrize(
    ("name", "config"),
    [("int8-dynamic", {"backend": "onnxruntime"}), ("int8-static", {}), ("int8-static", {"format": "qoperator"})],
)
def test_onnx_int8_graphs_hold_int8_operators(
    tiny_run: TinyRun, tmp_path: Path, name: str, config: dict[str, Any]
) -> None:
    out, verdict, ctx, _ = apply(tiny_run, name, config)
    assert verdict.passed, verdict.summary
    assert verdict.checks["int8_operators"] > 0
    assert verdict.checks["weight_dtypes"].get("int8", 0) > 0
    files = out.save(tmp_path / "saved")
    assert any(p.suffix == ".onnx" for p in files)
    assert logits(out, tiny_run).shape[-1] == tiny_run.spec.sequence_length
    if name == "int8-static":
        ids = ctx.facts["calibration"]["example_ids"]
        assert ids and all(i.startswith("train") for i in ids)  # never evaluation examples


def test_a_float_graph_claimed_int8_fails_verification(tiny_run: TinyRun) -> None:
    onnx_model, _, _, _ = apply(tiny_run, "onnx")
    verdict = COMPRESSORS.load("int8-static").from_mapping({}).verify(take_census(onnx_model.tensors()), onnx_model)
    assert not verdict.passed and "no int8 operators" in verdict.summary


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["bnb-int8", "bnb-nf4", "fp16"])
def test_gpu_compressors(tiny_run: TinyRun, name: str) -> None:
    tiny_run.spec = tiny_run.spec.model_copy(update={"device": Device("cuda")})
    model = TorchModel(tiny_run.model().module.to("cuda"), tiny_run.model().tokenizer, "cuda")
    compressor = COMPRESSORS.load(name).from_mapping({})
    before = take_census(model.tensors())  # bitsandbytes releases the float model it replaces
    out = compressor.compress(model, tiny_run.context())
    assert compressor.verify(before, out).passed
    batch = tiny_run.context().example_batch()
    reference = TorchModel(tiny_run.model().module.to("cuda"), None, "cuda").forward(batch)["start_logits"].float()
    logits = out.forward(out.stage(batch))["start_logits"].float()
    assert torch.isfinite(logits).all()
    assert torch.nn.functional.cosine_similarity(logits.flatten(), reference.flatten(), dim=0) > 0.9


def test_onnx_int8_dynamic_skip_keeps_nodes_float(tiny_run: TinyRun) -> None:
    pattern = r"layer\.\d+[./]output[./]dense"
    _, verdict, ctx, _ = apply(tiny_run, "int8-dynamic", {"backend": "onnxruntime", "skip": [pattern]})
    assert verdict.passed, verdict.summary
    assert len(ctx.facts["float_nodes"]) == 2  # one FFN output projection per layer


def test_a_pytorch_step_after_an_onnx_step_is_a_clear_error(tiny_run: TinyRun) -> None:
    onnx_model, _, _, _ = apply(tiny_run, "onnx")
    with pytest.raises(TypeError, match="prune-magnitude needs an eager PyTorch model, got a onnxruntime one"):
        COMPRESSORS.load("prune-magnitude").from_mapping({}).compress(onnx_model, tiny_run.context())


def test_int8_static_calibrates_in_shards_to_the_same_ranges(tiny_run: TinyRun, tmp_path: Path) -> None:
    """Min/max ranges merged shard by shard equal those of one pass over every input."""
    import onnx
    from onnx import numpy_helper

    def scales(shard: int) -> dict[str, Any]:
        config = {"method": "minmax", "calibration_samples": 6, "calibration_shard": shard}
        out, verdict, ctx, _ = apply(tiny_run, "int8-static", config)
        assert verdict.passed, verdict.summary
        used = ctx.facts["calibration_shard"]
        assert used == 1 if shard == 1 else used > 1  # 1000: one pass over every input
        (path,) = [p for p in out.save(tmp_path / f"shard{shard}") if p.suffix == ".onnx"]
        graph = onnx.load(str(path)).graph
        return {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith("_scale")}

    one_pass, sharded = scales(1000), scales(1)
    assert one_pass.keys() == sharded.keys() and one_pass
    assert all((one_pass[k] == sharded[k]).all() for k in one_pass)


@pytest.mark.parametrize(("total", "most", "size"), [(64, 8, 8), (6, 4, 3), (7, 4, 1), (3, 8, 3)])
def test_calibration_shards_divide_the_inputs(total: int, most: int, size: int) -> None:
    from compressors.int8_static import shard_size

    assert shard_size(total, most) == size


def test_distill_cache_key_follows_teacher_content_and_training_data(tiny_run: TinyRun, tmp_path: Path) -> None:
    import dataclasses
    import shutil

    from bench.core.sources import Source

    distill = COMPRESSORS.load("distill").from_mapping({"num_layers": 1})
    ctx = tiny_run.context()
    examples = ctx.training_examples(8)
    key, identity = distill.cache_key(ctx, examples)
    assert identity["training"]["split"] == "train" and identity["teacher"].startswith("sha256:")
    assert distill.cache_key(ctx, examples)[0] == key  # stable

    changed = [dict(e) for e in examples]
    changed[0]["question"] = str(changed[0]["question"]) + " really?"
    assert distill.cache_key(ctx, changed)[0] != key  # same ids, other content
    assert distill.cache_key(ctx, examples[:-1])[0] != key
    elsewhere = dataclasses.replace(ctx, training_source=Source(str(tmp_path / "other.json"), True))
    assert distill.cache_key(elsewhere, examples)[0] != key

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_run.source.location, teacher)
    copied = dataclasses.replace(ctx, model_source=Source(str(teacher), True))
    assert distill.cache_key(copied, examples)[0] == key  # the same content in another folder
    with (teacher / "config.json").open("a") as fh:
        fh.write("\n")
    assert distill.cache_key(copied, examples)[0] != key


def test_distill_ignores_a_cache_entry_without_its_marker(tiny_run: TinyRun) -> None:
    config = {"num_layers": 1, "max_steps": 2, "batch_size": 4, "max_seq_length": 64}
    _, _, ctx, _ = apply(tiny_run, "distill", config)
    entry = ctx.cache_dir / "students" / ctx.facts["cache_key"]
    (entry / "training.json").unlink()  # as a run killed while saving would leave it
    _, _, again, _ = apply(tiny_run, "distill", config)
    assert not again.facts["cached"] and (entry / "training.json").is_file()
    assert not list(entry.parent.glob(".*partial"))


def test_prune_structured_recovers_by_distillation_and_caches_it(tiny_run: TinyRun) -> None:
    config = {"heads": 0.5, "ffn": 0.5, "recover_steps": 3, "recover_batch_size": 4, "recover_seq_length": 64}
    trained, verdict, ctx, _ = apply(tiny_run, "prune-structured", config)
    recovery = ctx.facts["recovery"]
    assert verdict.passed and recovery["train_steps"] == 3 and not recovery["cached"]
    assert any("recovered by 3 steps" in note for note in ctx.notes)
    unrecovered, _, _, _ = apply(tiny_run, "prune-structured", {"heads": 0.5, "ffn": 0.5})
    assert not torch.equal(logits(trained, tiny_run), logits(unrecovered, tiny_run))  # training changed it
    again, _, ctx2, _ = apply(tiny_run, "prune-structured", config)
    assert ctx2.facts["recovery"]["cached"] and ctx2.facts["recovery"]["cache_key"] == recovery["cache_key"]
    assert torch.equal(logits(again, tiny_run), logits(trained, tiny_run))  # the cached weights, not retrained


def test_the_suite_seed_seeds_distillation(tiny_run: TinyRun, tmp_path: Path) -> None:
    config = {"num_layers": 1, "max_steps": 8, "batch_size": 4, "learning_rate": 1e-3, "max_seq_length": 64}
    distill = COMPRESSORS.load("distill").from_mapping(config)

    def student(seed: int, cache: str) -> dict[str, torch.Tensor]:
        ctx = dataclasses.replace(tiny_run.context(), seed=seed, cache_dir=tmp_path / cache)
        out = distill.compress(tiny_run.model(), ctx)
        assert ctx.facts["cached"] is False  # trained here, each time in a fresh cache
        return {name: value.clone() for name, value in out.module.state_dict().items()}

    first, again, other = student(0, "a"), student(0, "b"), student(1, "c")
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert any(not torch.equal(first[name], other[name]) for name in first)
    context = tiny_run.context()
    examples = context.training_examples(4)
    keys = {distill.cache_key(dataclasses.replace(context, seed=seed), examples)[0] for seed in (0, 1)}
    assert len(keys) == 2  # another seed trains another student: never served from the first one's cache


def test_distill_refuses_its_old_seed_setting() -> None:
    from bench.core.errors import ConfigError

    with pytest.raises(ConfigError, match="suite's `seed` seeds the training"):
        COMPRESSORS.load("distill").from_mapping({"seed": 3})


def test_the_learning_rate_decays_by_steps_unless_time_ends_training_first() -> None:
    from compressors.training import TrainingBudget, schedule_progress

    budget = TrainingBudget(max_steps=100, max_time_s=10.0)
    assert schedule_progress(0, 0.001, budget) == 0.0
    assert schedule_progress(50, 2.0, budget) == 0.5  # on pace for 100 steps in 4 s: by steps, not by clock
    assert schedule_progress(10, 5.0, budget) == 0.5  # 100 steps would take 50 s: time ends first
