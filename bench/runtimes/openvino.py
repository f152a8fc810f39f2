"""OpenVINO: convert an eager model with `openvino.convert_model`, compile it for the CPU with pinned threads
and an explicit inference precision, and read back what the compiled model really executes.

OpenVINO picks its own precision: on a CPU with AVX512-BF16 or AMX it runs an "fp32" model in bf16 unless
`INFERENCE_PRECISION_HINT` says otherwise. bench always sets the hint, and reads the precision of every
layer of the compiled (runtime) graph back, so a record never states a precision from a row's name.

Imported only by the OpenVINO compressors (extra `openvino`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.core.model import Batch, ExecutedPrecision, ModelHandle
from bench.core.serving import ServeRecipe
from bench.runtimes.native import openvino_config
from bench.runtimes.torch import TorchModel

COMPUTE_LAYERS = frozenset({"FullyConnected", "MatMul", "Convolution", "Subgraph", "ScaledAttn", "GatherMatmul"})
"""Runtime layer types that do a model's arithmetic (Subgraph: fused element-wise and attention kernels)."""
PRECISIONS = {"f32": "f32", "bf16": "bf16", "f16": "f16", "u8": "int8", "i8": "int8", "u4": "int4", "i4": "int4"}


def convert(model: TorchModel, example: Batch) -> Any:
    """The eager model as an `openvino.Model` with dynamic batch and sequence axes; inputs keep their names."""
    import openvino as ov
    import torch

    names = list(example)
    module = model.module.to("cpu").eval()

    class Positional(torch.nn.Module):
        """The model with positional inputs in a fixed order, returning its outputs as a dict."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *args: torch.Tensor) -> dict[str, torch.Tensor]:
            out = self.inner(**dict(zip(names, args, strict=True)))
            return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}

    with torch.inference_mode():
        converted = ov.convert_model(Positional(), example_input=tuple(example[n].cpu() for n in names))
    for port, name in zip(converted.inputs, names, strict=True):
        port.get_tensor().set_names({name})
    return converted


def compile_model(model: Any, threads: int, precision: str, performance_hint: str = "LATENCY") -> Any:
    """Compile for the CPU with `threads` inference threads and the inference precision pinned."""
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", openvino_config(threads, precision, performance_hint))


def runtime_precision(compiled: Any) -> ExecutedPrecision:
    """How many compute layers of the compiled graph run in each precision, as the plugin reports them."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in COMPUTE_LAYERS:
            raw = info["runtimePrecision"].astype(str).lower()
            counts[PRECISIONS.get(raw, raw)] += 1
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    hint = hint.to_string() if hasattr(hint, "to_string") else str(hint)
    return ExecutedPrecision(ops=dict(counts), source=f"openvino runtime graph (inference precision hint {hint})")


def constants(model: Any) -> Iterator[tuple[str, Any]]:
    """The weights (Constant nodes holding floating-point or integer tensors with more than one element)."""
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant":
            data = op.get_data()
            if data.ndim >= 1 and data.size > 1:
                yield op.get_friendly_name(), data


class CompiledOpenVino(ModelHandle):
    """A compiled OpenVINO model that someone else compiled (NNCF's accuracy control validates with these)."""

    runtime = "openvino"
    save_format = "openvino"

    def __init__(self, compiled: Any, tokenizer: Any, config: Any = None) -> None:
        super().__init__(tokenizer, "cpu", config)
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.input_names = [port.get_any_name() for port in compiled.inputs]
        self.output_names = [port.get_any_name() for port in compiled.outputs]

    def forward(self, batch: Batch) -> Mapping[str, Any]:
        import torch

        feed = {name: batch[name].cpu().numpy() for name in self.input_names}
        results = self.request.infer(feed)
        return {
            name: torch.from_numpy(results[port].copy())
            for name, port in zip(self.output_names, self.compiled.outputs, strict=True)
        }

    def save(self, directory: Path) -> list[Path]:
        raise NotImplementedError("a compiled model without its graph cannot be saved")

    def tensors(self) -> Iterator[tuple[str, Any]]:
        return iter(())

    def executed_precision(self) -> ExecutedPrecision:
        return runtime_precision(self.compiled)


class OpenVinoModel(CompiledOpenVino):
    """A model compiled by OpenVINO for the CPU."""

    runtime = "openvino"
    save_format = "openvino"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        threads: int,
        precision: str,
        config: Any = None,
        performance_hint: str = "LATENCY",
    ) -> None:
        super().__init__(compile_model(model, threads, precision, performance_hint), tokenizer, config)
        self.model = model
        self.recipe = ServeRecipe(
            runtime="openvino",
            file="model.xml",
            threads=threads,
            options={"precision": precision, "performance_hint": performance_hint},
        )

    def serve_recipe(self) -> ServeRecipe | str:
        return self.recipe

    def save(self, directory: Path) -> list[Path]:
        import openvino as ov

        directory.mkdir(parents=True, exist_ok=True)
        ov.save_model(self.model, str(directory / "model.xml"), compress_to_fp16=False)
        files = [directory / "model.xml", directory / "model.bin"]
        if self.config is not None:
            self.config.save_pretrained(directory)
            files.append(directory / "config.json")
        return files

    def tensors(self) -> Iterator[tuple[str, Any]]:
        yield from constants(self.model)

    def operators(self) -> dict[str, int]:
        """Operator census of the model graph (FakeQuantize nodes mark NNCF's int8 quantization)."""
        return dict(sorted(Counter(op.get_type_name() for op in self.model.get_ordered_ops()).items()))
