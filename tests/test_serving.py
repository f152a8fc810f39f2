"""The serve phase: a saved ONNX Runtime or OpenVINO model is timed and scored in a fresh process that imports
its runtime alone, and the memory it reports is what such a process needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.core.latency import LatencySettings
from bench.core.records import Status
from bench.core.serving import ServeRecipe
from bench.core.shape import Shape
from bench.serve.client import ServeFailed, ServeProcess, Zygote
from bench.serve.zygote import FORKABLE

from .conftest import write_suite
from .test_cli import bench
from .test_integration import records

SHAPE = Shape(batch_size=1, sequence_length=32)
SETTINGS = LatencySettings(warmup=2, min_iterations=30, min_duration_s=0.0, max_iterations=30, max_duration_s=60.0)

REFERENCE = """
import sys, numpy as np
runtime, path = sys.argv[1], sys.argv[2]
inputs = {n: np.ones((1, 32), dtype=np.int64) for n in ("input_ids", "attention_mask", "token_type_ids")}
if runtime == "onnxruntime":
    import onnxruntime as ort
    options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    call = lambda: session.run(None, {n: inputs[n] for n in names})
else:
    import openvino as ov
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    names = [p.get_any_name() for p in compiled.inputs]
    call = lambda: request.infer({n: inputs[n] for n in names})
for _ in range(32):
    call()
print(next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""

REFERENCE_TORCH = """
import sys, torch, transformers
torch.set_num_threads(1)
module = transformers.BertForQuestionAnswering.from_pretrained(sys.argv[1], torch_dtype=torch.float32).eval()
inputs = {n: torch.ones((1, 32), dtype=torch.int64) for n in ("input_ids", "attention_mask", "token_type_ids")}
with torch.inference_mode():
    for _ in range(32):
        module(**inputs)
print(next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _tiny(tiny_model_dir: Path) -> Any:
    """The tiny BERT as the qa task loads it."""
    from bench.core.registry import TASKS
    from bench.core.sources import Source

    return TASKS.load("qa").from_mapping({}).load_model(Source(str(tiny_model_dir), local=True), "cpu")


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny BERT exported to ONNX, as the onnx compressor saves it."""
    from bench.runtimes.onnx import export

    path = tmp_path_factory.mktemp("saved") / "model.onnx"
    export(_tiny(tiny_model_dir), {n: _ones(n) for n in INPUTS}, path)
    return path


@pytest.fixture(scope="module")
def openvino_file(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny BERT converted to an OpenVINO IR, as the openvino compressor saves it."""
    import openvino as ov

    from bench.runtimes.openvino import convert

    path = tmp_path_factory.mktemp("saved-ov") / "model.xml"
    ov.save_model(convert(_tiny(tiny_model_dir), {n: _ones(n) for n in INPUTS}), str(path), compress_to_fp16=False)
    return path


def _ones(name: str) -> Any:
    import torch

    return torch.ones((1, 32), dtype=torch.int64)


def _arrays() -> dict[str, Any]:
    import numpy as np

    return {n: np.ones((1, 32), dtype=np.int64) for n in INPUTS}


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_served_model_runs_without_torch_and_its_memory_matches_a_bare_process(
    runtime: str, request: pytest.FixtureRequest
) -> None:
    saved: Path = request.getfixturevalue("onnx_file" if runtime == "onnxruntime" else "openvino_file")
    options = {"precision": "f32", "performance_hint": "LATENCY"} if runtime == "openvino" else {}
    recipe = ServeRecipe(runtime=runtime, file=saved.name, threads=1, options=options)  # type: ignore[arg-type]
    server = ServeProcess(recipe, saved.parent, log=None)
    try:
        assert not server.loaded.torch_loaded
        assert set(server.loaded.inputs) <= {"input_ids", "attention_mask", "token_type_ids"}
        timing = server.time([_arrays()], SETTINGS, SHAPE, "forward")
        assert len(timing.samples_ms) == 30 and timing.stats.p50 > 0
        outputs = server.forward(_arrays())
        assert {o.shape for o in outputs.values()} == {(1, 32)}
        served = server.finish()
    finally:
        server.close()
    assert served.where == "fresh process" and served.runtime == runtime and served.load_s
    assert served.rss_start and served.rss_runtime and served.rss_runtime > served.rss_start
    assert served.timing_peak and served.scoring_peak and served.max_rss >= served.timing_peak
    bare = int(subprocess.run([sys.executable, "-c", REFERENCE, runtime, str(saved)], check=True,
                              capture_output=True, text=True).stdout)  # fmt: skip
    # a bare process that imports the runtime, loads the file and makes the calls peaks where the served one does
    assert abs(served.max_rss - bare) <= max(0.10 * bare, 15 * 2**20), (served.max_rss, bare)
    assert served.timing_peak <= served.max_rss


def test_a_model_that_does_not_load_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(ServeFailed, match="failed in a fresh onnxruntime process"):
        ServeProcess(ServeRecipe(runtime="onnxruntime", file="model.onnx", threads=1), tmp_path, log=None)
    with pytest.raises(ServeFailed, match=r"no model\.xml"):
        ServeProcess(ServeRecipe(runtime="openvino", file="model.xml", threads=1), tmp_path, log=None)


def test_a_served_pytorch_model_is_the_saved_one(tiny_model_dir: Path, tmp_path: Path) -> None:
    import numpy as np

    model = _tiny(tiny_model_dir)
    recipe = model.serve_recipe()
    assert isinstance(recipe, ServeRecipe) and recipe.runtime == "pytorch"
    assert recipe.options["architecture"] == "BertForQuestionAnswering" and recipe.options["dtype"] == "float32"
    model.save(tmp_path)
    server = ServeProcess(recipe, tmp_path, log=None)
    try:
        assert server.loaded.torch_loaded
        server.time([_arrays()], SETTINGS, SHAPE, "forward")
        served = server.forward(_arrays())
        memory = server.finish()
    finally:
        server.close()
    here = model.forward({n: _ones(n) for n in INPUTS})
    for name in ("start_logits", "end_logits"):
        np.testing.assert_allclose(served[name], here[name].numpy(), rtol=1e-5, atol=1e-5)
    bare = int(subprocess.run([sys.executable, "-c", REFERENCE_TORCH, str(tmp_path)], check=True,
                              capture_output=True, text=True).stdout)  # fmt: skip
    # as deployed: a process with torch, transformers and the saved model peaks where the served one does
    assert memory.max_rss is not None and abs(memory.max_rss - bare) <= max(0.10 * bare, 15 * 2**20), (
        memory.max_rss,
        bare,
    )


def test_a_torch_dynamic_int8_state_dict_is_served_as_its_layers_rebuilt(tiny_model_dir: Path, tmp_path: Path) -> None:
    import numpy as np
    import torch

    from bench.runtimes.torch import TorchModel

    fp32 = _tiny(tiny_model_dir)
    targets = {n: torch.ao.quantization.per_channel_dynamic_qconfig for n, m in fp32.module.named_modules()
               if isinstance(m, torch.nn.Linear) and n != "qa_outputs"}  # fmt: skip
    quantized = torch.ao.quantization.quantize_dynamic(fp32.module, targets, dtype=torch.qint8)
    model = TorchModel(quantized, None, "cpu", save_format="torch")
    recipe = model.serve_recipe()
    assert isinstance(recipe, ServeRecipe), recipe
    assert recipe.options["per_channel"] is True and "qa_outputs" not in str(recipe.options["dynamic_int8"])
    model.save(tmp_path)
    server = ServeProcess(recipe, tmp_path, log=None)
    try:
        served = server.forward(_arrays())
        server.finish()
    finally:
        server.close()
    here = model.forward({n: _ones(n) for n in INPUTS})
    for name in ("start_logits", "end_logits"):
        np.testing.assert_allclose(served[name], here[name].numpy(), rtol=1e-5, atol=1e-5)
    state = torch.load(tmp_path / "model.pt", weights_only=False)  # a state dict of other layers fails to load
    state.pop(next(k for k in state if k.endswith("_packed_params._packed_params")))
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(ServeFailed, match=r"query\._packed_params"):
        ServeProcess(recipe, tmp_path, log=None)


@pytest.mark.parametrize("runtime", sorted(FORKABLE))
def test_a_zygote_forks_serving_processes_that_answer_as_a_started_one(
    runtime: str, request: pytest.FixtureRequest, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import numpy as np
    import psutil

    if runtime == "pytorch":
        model = _tiny(tiny_model_dir)
        model.save(tmp_path)
        recipe, folder = model.serve_recipe(), tmp_path
    else:
        saved: Path = request.getfixturevalue("onnx_file")
        recipe, folder = ServeRecipe(runtime="onnxruntime", file=saved.name, threads=1), saved.parent
    assert isinstance(recipe, ServeRecipe)

    def answers(server: ServeProcess) -> tuple[dict[str, Any], Any]:
        try:
            server.time([_arrays()], SETTINGS, SHAPE, "forward")
            return server.forward(_arrays()), server.finish()
        finally:
            server.close()

    started, _ = answers(ServeProcess(recipe, folder, log=None))
    zygote = Zygote(runtime, log=None)
    try:
        children = [ServeProcess(recipe, folder, log=None, zygote=zygote) for _ in range(2)]
        parent = psutil.Process(zygote.process.pid)
        assert {psutil.Process(c.process.pid).ppid() for c in children} == {parent.pid}  # type: ignore[attr-defined]
        assert parent.num_threads() <= bare_import_threads(runtime) + 1  # and its parent watchdog: no model's pool
        for child in children:
            forked, serving = answers(child)
            assert serving.torch_loaded == (runtime == "pytorch") and serving.timing_peak
            for name in started:
                np.testing.assert_allclose(forked[name], started[name], rtol=1e-5, atol=1e-5)
            assert child.process.poll() is not None  # each child ends after its Finish
    finally:
        zygote.close()
    assert zygote.process.returncode == 0


def bare_import_threads(runtime: str) -> int:
    """The threads of a process that has imported the runtime's modules and done nothing else."""
    from bench.serve.loaders import RUNTIME_MODULES

    code = f"import os, {', '.join(RUNTIME_MODULES[runtime])}; print(len(os.listdir('/proc/self/task')))"
    return int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def test_a_zygote_that_cannot_fork_is_one_line(tmp_path: Path) -> None:
    zygote = Zygote("onnxruntime", log=None)
    zygote.process.kill()
    zygote.process.wait()
    recipe = ServeRecipe(runtime="onnxruntime", file="model.onnx", threads=1)
    with pytest.raises(ServeFailed, match="zygote"):
        ServeProcess(recipe, tmp_path, log=None, zygote=zygote)
    zygote.close()


def _served_outputs(model: Any, folder: Path) -> tuple[dict[str, Any], Any]:
    """Save `model` to `folder`, serve it, time it briefly and make one scoring call: the outputs and the
    timing."""
    recipe = model.serve_recipe()
    assert isinstance(recipe, ServeRecipe), recipe
    model.save(folder)
    server = ServeProcess(recipe, folder, log=None)
    try:
        timing = server.time([_arrays()], SETTINGS, SHAPE, "forward")
        outputs = server.forward(_arrays())
        server.finish()
    finally:
        server.close()
    return outputs, timing


def _assert_answers_as(served: dict[str, Any], model: Any, tolerance: float = 1e-5) -> None:
    import numpy as np

    here = model.forward({n: _ones(n) for n in INPUTS})
    for name in ("start_logits", "end_logits"):
        np.testing.assert_allclose(served[name], here[name].numpy(), rtol=tolerance, atol=tolerance)


def test_a_structurally_pruned_model_is_served_with_its_saved_widths(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    from bench.runtimes.torch import Rebuild, rebuild_plan

    model = _tiny(tiny_model_dir)
    module: Any = model.module
    assert rebuild_plan(module) == Rebuild()
    module.prune_heads({0: [0]})  # heads: the config records them, the rebuild prunes them again
    assert rebuild_plan(module) == Rebuild()
    layer = module.bert.encoder.layer[0]
    keep = torch.arange(layer.intermediate.dense.out_features - 4)
    layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, keep, dim=0)
    layer.output.dense = prune_linear_layer(layer.output.dense, keep, dim=1)
    plan = rebuild_plan(module)
    assert isinstance(plan, Rebuild) and set(plan.resized) == {
        "bert.encoder.layer.0.intermediate.dense",
        "bert.encoder.layer.0.output.dense",
    }
    served, _ = _served_outputs(model, tmp_path)
    _assert_answers_as(served, model)
    (tmp_path / "model.safetensors").unlink()  # a folder without its weights is one line, not a random model
    recipe = model.serve_recipe()
    assert isinstance(recipe, ServeRecipe)
    with pytest.raises(ServeFailed, match=r"no \.safetensors file"):
        ServeProcess(recipe, tmp_path, log=None)


def test_a_model_whose_modules_differ_from_its_config_is_measured_where_it_was_compressed(
    tiny_model_dir: Path,
) -> None:
    model = _tiny(tiny_model_dir)
    attention: Any = model.module.bert.encoder.layer[1].attention.self
    attention.num_attention_heads //= 2  # same tensors, another computation: no rebuild reproduces it
    attention.attention_head_size *= 2
    reason = model.serve_recipe()
    assert isinstance(reason, str) and "bert.encoder.layer.1.attention.self" in reason


def test_a_compiled_model_is_compiled_again_in_its_serving_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    from bench.core.model import Compilation

    model = _tiny(tiny_model_dir)
    module: Any = model.module
    module.forward = torch.compile(module.forward)
    model.compilation = Compilation("default", None, 1.0, 1, fullgraph=False)
    recipe = model.serve_recipe()
    assert isinstance(recipe, ServeRecipe)
    assert recipe.options["compile_mode"] == "default" and recipe.options["compile_fullgraph"] is False
    served, timing = _served_outputs(model, tmp_path)
    _assert_answers_as(served, model, tolerance=1e-4)
    assert timing.graphs_compiled == 0  # compiled in the warm-up, never inside the samples
    assert timing.cold_ms > timing.stats.p50 * 10  # the first call compiled


@pytest.mark.slow
def test_rows_are_served_from_their_saved_files(tmp_path: Path, tiny_model_dir: Path, tiny_squad_dir: Path) -> None:
    suite = write_suite(
        tmp_path / "s.yaml",
        tiny_model_dir,
        tiny_squad_dir,
        compressors=[{"name": "baseline"}, {"name": "onnx"}, {"name": "openvino"}, {"name": "int8-dynamic",
                     "label": "int8-ort", "config": {"backend": "onnxruntime"}}, {"name": "int8-dynamic"},
                     {"name": "int8-dynamic", "label": "int8-torchao", "config": {"backend": "torchao"}},
                     {"name": "prune-structured", "config": {"heads": 0.25, "ffn": 0.25}}],
    )  # fmt: skip
    result = bench("run", str(suite), "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 0, result.stdout + result.stderr
    stored = records(tmp_path / "r")
    base = stored["baseline"]
    torchao = stored["int8-torchao"]
    assert torchao.status == Status.OK, torchao.error
    assert torchao.serving is not None and torchao.serving.where == "compressing process"
    assert "state dict" in (torchao.serving.reason or "") and any("compressing process" in n for n in torchao.notes)
    assert "latency" in torchao.memory.phase_peaks
    rows = (("baseline", "pytorch"), ("onnx", "onnxruntime"), ("openvino", "openvino"), ("int8-ort", "onnxruntime"),
            ("int8-dynamic", "pytorch"), ("prune-structured", "pytorch"))  # fmt: skip
    for label, runtime in rows:
        record = stored[label]
        assert record.status == Status.OK, record.error
        served = record.serving
        assert served is not None and served.where == "fresh process" and served.runtime == runtime
        assert served.torch_loaded == (runtime == "pytorch")
        assert served.timing_peak and served.scoring_peak and served.model_bytes
        assert "fresh process" in record.latency["forward"].scope
        assert "latency" not in record.memory.phase_peaks  # the compressing process's memory is not the row's
        assert record.accuracy is not None and record.accuracy.n_examples == base.accuracy.n_examples
    # fp32 runtimes answer as the baseline does: the saved files are the model that was scored
    assert stored["onnx"].agreement.metrics["exact_agreement"].value == 100.0


def test_a_cuda_torch_row_is_served_on_its_device(tiny_model_dir: Path) -> None:
    from bench.runtimes.torch import TorchModel

    module = _tiny(tiny_model_dir).module
    recipe = TorchModel(module, None, "cuda:0").serve_recipe()  # only read: nothing runs on the device here
    assert isinstance(recipe, ServeRecipe) and recipe.device == "cuda:0"
    on_cpu = TorchModel(module, None, "cpu").serve_recipe()
    assert isinstance(on_cpu, ServeRecipe) and on_cpu.device == "cpu"


@pytest.mark.gpu
def test_a_served_cuda_row_times_staged_inputs_and_reports_its_device_memory(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch

    from bench.runtimes.torch import TorchModel

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")

    model = TorchModel(_tiny(tiny_model_dir).module, None, "cuda:0")
    recipe = model.serve_recipe()
    assert isinstance(recipe, ServeRecipe)
    model.save(tmp_path)
    server = ServeProcess(recipe, tmp_path, log=None)
    try:
        timing = server.time([_arrays()], SETTINGS, SHAPE, "forward")
        server.forward(_arrays())
        served = server.finish()
    finally:
        server.close()
    assert timing.device_samples_ms is not None and len(timing.device_samples_ms) == len(timing.samples_ms)
    assert served.device_memory is not None and served.device_memory.device == "cuda:0"
    phases = served.device_memory.phases
    assert set(phases) == {"latency", "evaluate"} and all(p.allocated_peak > 0 for p in phases.values())
