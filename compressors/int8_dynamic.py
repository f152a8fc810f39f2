"""Dynamic int8 quantization of Linear layers in eager PyTorch (weights int8, activations quantized per call).

Two backends:
- `torch-ao` (default): torch.ao.quantization.quantize_dynamic with fbgemm/x86 kernels. Deprecated in
  torch 2.13 but still the fast path on CPU; the deprecation warning is caught and noted in the record.
- `torchao`: torchao's Int8DynamicActivationInt8WeightConfig. Measured slower than fp32 in eager mode on
  a 2-core AVX-512 VNNI CPU (133 ms against 83 ms p50 on MiniLM-SQuAD); followed by the `compile` step,
  43 ms, so it is opt-in and meant to be chained with `compile`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import model_validator

from bench.core.census import Census, is_wrapper_tensor, take_census
from bench.core.compressor import CompressContext, Trait, Verification
from bench.core.model import ModelHandle
from bench.core.settings import Choice, PluginConfig
from bench.runtimes.torch import TorchModel, eager
from compressors.hardware import note_int8_hardware
from compressors.onnx_export import (
    ToOnnxRuntime,
    export_for_ort,
    export_seq2seq_for_ort,
    ort_session,
    seq2seq_session,
    verify_int8_graph,
)
from compressors.patterns import Pattern, matches_any, matching_nodes


class Int8DynamicConfig(PluginConfig):
    """Settings of int8-dynamic."""

    backend: Literal["torch-ao", "torchao", "onnxruntime"] = "torch-ao"
    engine: Literal["x86", "fbgemm", "onednn", "qnnpack"] | None = None
    """torch.ao quantized engine; default: torch's choice for this CPU."""
    per_channel: bool = True
    """One weight scale per output channel (torch-ao and onnxruntime backends); per-tensor otherwise."""
    fuse: bool = True
    """onnxruntime backend: fuse transformer blocks before quantizing."""
    skip: list[Pattern] = []
    """Regular expressions (re.search) over the names of layers kept in float: module names for torch-ao
    ('bert.encoder.layer.0.output.dense'), ONNX node names for onnxruntime
    ('/bert/encoder/layer.0/output/dense/MatMul'); 'layer\\.\\d+[./]output[./]dense' matches both."""

    @model_validator(mode="after")
    def _skip_needs_torch_ao(self) -> Int8DynamicConfig:
        if self.skip and self.backend == "torchao":
            raise ValueError("`skip` is supported by the torch-ao and onnxruntime backends")
        return self


def count_linear(module: Any) -> dict[str, int]:
    """Linear layers by kind: float nn.Linear, dynamically quantized, or torchao-quantized weights."""
    import torch

    counts = {"float_linear": 0, "int8_linear": 0}
    for sub in module.modules():
        if isinstance(sub, torch.ao.nn.quantized.dynamic.Linear):
            counts["int8_linear"] += 1
        elif isinstance(sub, torch.nn.Linear):
            quantized = is_wrapper_tensor(sub.weight)
            counts["int8_linear" if quantized else "float_linear"] += 1
    return counts


class Int8Dynamic(ToOnnxRuntime):
    """Quantize every nn.Linear to int8 weights with dynamic int8 activations (CPU)."""

    name = "int8-dynamic"
    precision = "int8"
    description = "dynamic int8 quantization of Linear layers: PyTorch (default), torchao or ONNX Runtime (CPU)"
    Config = Int8DynamicConfig
    config: Int8DynamicConfig
    search_space = {"backend": Choice(values=("torch-ao", "onnxruntime")), "per_channel": Choice(values=(True, False))}
    layer_setting = "skip"
    presets = {"int8-dynamic-ort": {"backend": "onnxruntime"}, "int8-dynamic-torchao": {"backend": "torchao"}}

    def removes(self) -> frozenset[Trait]:
        if self.config.backend == "onnxruntime":
            return super().removes()
        return frozenset({Trait.AS_LOADED, Trait.FLOAT_LINEAR})

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        import torch

        model = eager(model, self.name)
        note_int8_hardware(ctx)
        if self.config.backend == "onnxruntime":
            return self._onnxruntime(model, ctx)
        if self.config.backend == "torchao":
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

            quantize_(model.module, Int8DynamicActivationInt8WeightConfig())
            ctx.notes.append("torchao int8 fuses its quantized matmuls only under torch.compile (a `compile` step)")
            return TorchModel(model.module, model.tokenizer, model.device, save_format="torch")
        if self.config.engine is not None:
            torch.backends.quantized.engine = self.config.engine
        qconfig = (
            torch.ao.quantization.per_channel_dynamic_qconfig
            if self.config.per_channel
            else torch.ao.quantization.default_dynamic_qconfig
        )
        targets = {
            name: qconfig
            for name, sub in model.module.named_modules()
            if isinstance(sub, torch.nn.Linear) and not matches_any(name, self.config.skip)
        }
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quantized = torch.ao.quantization.quantize_dynamic(model.module, targets, dtype=torch.qint8, inplace=False)
        if any("deprecated" in str(w.message) for w in caught):
            ctx.notes.append("torch.ao.quantization is deprecated in this torch (used: fastest eager CPU int8)")
        ctx.notes.append(f"quantized engine: {torch.backends.quantized.engine}")
        return TorchModel(quantized, model.tokenizer, model.device, save_format="torch")

    def _onnxruntime(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        from bench.runtimes.onnx_seq2seq import is_seq2seq, transform_graphs

        if is_seq2seq(model):
            source = export_seq2seq_for_ort(model, ctx)
            target = transform_graphs(source, source.with_name("int8-dynamic"), lambda a, b: self._quantize(a, b, ctx))
            return seq2seq_session(target, model, ctx)
        path = export_for_ort(model, ctx, self.config.fuse)
        target_path = path.with_name("model-int8-dynamic.onnx")
        self._quantize(path, target_path, ctx)
        return ort_session(target_path, model, ctx)

    def _quantize(self, source: Path, target: Path, ctx: CompressContext) -> None:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        graph = onnx.load(str(source), load_external_data=False).graph
        excluded = matching_nodes(graph, self.config.skip)
        listed = ctx.facts.get("float_nodes")
        ctx.facts["float_nodes"] = [*(listed if isinstance(listed, list) else []), *excluded]
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            per_channel=self.config.per_channel,
            nodes_to_exclude=excluded,
            # fused graphs hold com.microsoft operators whose outputs ONNX shape inference cannot type
            extra_options={"DefaultTensorType": 1},  # onnx.TensorProto.FLOAT
        )

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        if self.config.backend == "onnxruntime":
            return verify_int8_graph(after, "int8-dynamic (onnxruntime)")
        if not isinstance(after, TorchModel):
            return Verification(passed=False, summary="not an eager PyTorch model: no int8 Linear layers to check")
        counts = count_linear(after.module)
        census = take_census(after.tensors())
        int8_elems = sum(n for d, n in census.dtypes.items() if d in ("qint8", "int8"))
        checks: dict[str, Any] = {
            **counts,
            "int8_weight_elements": int8_elems,
            "weight_dtypes": census.dtypes,
        }
        if counts["int8_linear"] == 0 or int8_elems == 0:
            return Verification(passed=False, summary="no Linear layer holds int8 weights", checks=checks)
        return Verification(
            passed=True,
            summary=f"{counts['int8_linear']} Linear layers int8, {counts['float_linear']} left float",
            checks=checks,
        )
