"""ONNX: export an eager model, run it with ONNX Runtime, and census its graph.

Imported only by the compressors that produce ONNX models (extra `onnx`).
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.core.model import Batch, ExecutedPrecision, ModelHandle, Tokenizer, TransformersConfig
from bench.core.serving import ServeRecipe
from bench.runtimes.native import session_options
from bench.runtimes.torch import TorchModel

# Operators that compute in 8-bit integers, in QOperator or dynamic form; QDQ graphs mark int8
# with QuantizeLinear/DequantizeLinear pairs around float operators (fused into int8 kernels at load).
INT8_OPERATORS = frozenset(
    {
        "MatMulInteger",
        "ConvInteger",
        "QLinearMatMul",
        "QLinearConv",
        "QGemm",
        "QAttention",
        "QLinearAdd",
        "QLinearMul",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "DynamicQuantizeLSTM",
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
    }
)
DYNAMIC_ACTIVATION_OPERATORS = frozenset(
    {"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention", "DynamicQuantizeLSTM"}
)
"""Operators that quantize activations with scales computed over the whole call (QAttention too: ONNX
Runtime's dynamic quantization emits it)."""
EXPORT_OPSET = 17


def export(model: TorchModel, example: Batch, path: Path, opset: int = EXPORT_OPSET) -> list[str]:
    """Export an eager model to ONNX with dynamic batch and sequence axes; return its output names."""
    import torch

    names = list(example)
    with torch.inference_mode():
        outputs = model.forward(example)
    output_names = list(outputs)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, *output_names]}
    path.parent.mkdir(parents=True, exist_ok=True)
    module = model.module.to("cpu").eval()
    set_attention = getattr(module, "set_attn_implementation", None)
    if callable(set_attention):
        # plain attention ops export to graphs that ONNX Runtime's tools understand
        with contextlib.suppress(ValueError, NotImplementedError):
            set_attention("eager")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (),
            str(path),
            kwargs={n: example[n].cpu() for n in names},
            input_names=names,
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return output_names


def fuse_transformer(path: Path, out: Path, config: Any) -> dict[str, int]:
    """ONNX Runtime's transformer fusions (attention, layer norm, GELU) for BERT-like encoders.
    Returns the fused operator counts; raises ValueError for an architecture it does not know."""
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = getattr(config, "model_type", "")
    if model_type not in ("bert", "roberta", "distilbert", "electra", "xlm-roberta"):
        raise ValueError(f"no ONNX Runtime fusion for model type '{model_type}'")
    optimized = optimize_model(
        str(path),
        model_type="bert" if model_type in ("roberta", "electra", "xlm-roberta") else model_type,
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=0,
    )
    optimized.save_model_to_file(str(out))
    return {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}


def operator_census(path: Path) -> dict[str, int]:
    """Node count per operator type in an ONNX graph, subgraphs (If branches of merged decoders) included."""
    import onnx

    counts: Counter[str] = Counter()

    def walk(graph: Any) -> None:
        for node in graph.node:
            counts[node.op_type] += 1
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk(attr.g)
                for sub in attr.graphs:
                    walk(sub)

    walk(onnx.load(str(path), load_external_data=False).graph)
    return dict(sorted(counts.items()))


def copy_model_files(sources: Iterable[Path], directory: Path, config: Any) -> list[Path]:
    """Copy ONNX files (and the model config) into `directory`, as a user ships them; return the files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        target = directory / source.name
        shutil.copyfile(source, target)
        written.append(target)
    if config is not None:
        config.save_pretrained(directory)
        written.append(directory / "config.json")
    return sorted(written)


def initializers(path: Path, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """The weight tensors (initializers) of an ONNX graph as numpy arrays, by name."""
    import onnx
    from onnx import numpy_helper

    for init in onnx.load(str(path)).graph.initializer:
        yield prefix + init.name, numpy_helper.to_array(init)


def int8_operators(ops: Mapping[str, int]) -> int:
    """How many operators of a census compute in, or convert to, 8-bit integers."""
    return sum(n for op, n in ops.items() if op in INT8_OPERATORS)


INT8_COMPUTE = frozenset(
    {
        "MatMulInteger",
        "QLinearMatMul",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "QGemm",
        "QAttention",
        "QLinearConv",
        "ConvInteger",
    }
)
FLOAT_COMPUTE = frozenset(
    {"MatMul", "Gemm", "FusedMatMul", "FusedGemm", "Attention", "MultiHeadAttention", "Conv", "FusedConv"}
)
FLOAT_TYPES = {1: "f32", 10: "f16", 16: "bf16"}


def _float_precision(model: Any) -> str:
    """The element type of a graph's float weights (f32 unless they are all half or bfloat16)."""
    types = {init.data_type for init in model.graph.initializer if init.data_type in FLOAT_TYPES}
    return FLOAT_TYPES[types.pop()] if len(types) == 1 else "f32"


def executed_operators(paths: Iterable[Path], threads: int) -> ExecutedPrecision:
    """What ONNX Runtime really runs: each graph is loaded with the same options as the timed session, and
    the graph it optimized (fused int8 kernels, or Quantize/Dequantize left around float MatMuls) is read."""
    import tempfile

    import onnx
    import onnxruntime as ort

    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="bench-ort-") as tmp:
        for index, path in enumerate(paths):
            options = session_options(threads)
            optimized = Path(tmp) / f"{index}.onnx"
            options.optimized_model_filepath = str(optimized)
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            graph = onnx.load(str(optimized), load_external_data=False)
            float_kind = _float_precision(graph)
            for node in graph.graph.node:
                if node.op_type in INT8_COMPUTE:
                    counts["int8"] += 1
                elif node.op_type in FLOAT_COMPUTE:
                    counts[float_kind] += 1
    return ExecutedPrecision(ops=dict(counts), source="onnxruntime optimized graph (CPU execution provider)")


class OrtHandle(ModelHandle):
    """A model run by ONNX Runtime: every session it opens has the graph optimizations on, its threads pinned
    and the execution provider of its device (CUDA with the CPU as fallback, or the CPU)."""

    runtime = "onnxruntime"
    save_format = "onnx"

    def __init__(self, tokenizer: Tokenizer, device: str, threads: int, config: TransformersConfig | None) -> None:
        super().__init__(tokenizer, device, config)
        self.threads = threads
        self.options = session_options(threads)
        cuda = self.device.is_cuda
        self.provider = "CUDAExecutionProvider" if cuda else "CPUExecutionProvider"
        """The execution provider of the device."""
        self.provider_options = self.device.ort_cuda_options if cuda else None

    @property
    def providers(self) -> list[str | tuple[str, dict[str, str]]]:
        """The providers in the order a session tries them."""
        if self.provider_options is None:
            return [self.provider]
        return [(self.provider, self.provider_options), "CPUExecutionProvider"]


class OrtModel(OrtHandle):
    """An ONNX graph run by ONNX Runtime."""

    def __init__(
        self, path: Path, tokenizer: Tokenizer, device: str, threads: int, config: TransformersConfig | None = None
    ) -> None:
        import onnxruntime as ort

        super().__init__(tokenizer, device, threads, config)
        self.path = path
        self.session = ort.InferenceSession(str(path), self.options, providers=self.providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._operators: dict[str, int] | None = None

    def forward(self, batch: Batch) -> Mapping[str, Any]:
        import torch

        feed = {name: batch[name].cpu().numpy() for name in self.input_names}
        outputs = self.session.run(None, feed)
        return {name: torch.from_numpy(value) for name, value in zip(self.output_names, outputs, strict=True)}

    def save(self, directory: Path) -> list[Path]:
        return copy_model_files([self.path, *self.path.parent.glob(f"{self.path.name}.data")], directory, self.config)

    def tensors(self) -> Iterator[tuple[str, Any]]:
        yield from initializers(self.path)

    def operators(self) -> dict[str, int]:
        """Operator census of the graph as saved (read once: the file does not change under a session)."""
        if self._operators is None:
            self._operators = operator_census(self.path)
        return dict(self._operators)

    def rows_independent(self) -> bool:
        return not DYNAMIC_ACTIVATION_OPERATORS & set(self.operators())

    def executed_precision(self) -> ExecutedPrecision:
        return executed_operators([self.path], self.threads)

    def serve_recipe(self) -> ServeRecipe | str:
        if self.device.is_cuda:
            return "CUDA rows are timed and scored in the compressing process (no device serving yet)"
        return ServeRecipe(runtime="onnxruntime", file=self.path.name, threads=self.threads)
