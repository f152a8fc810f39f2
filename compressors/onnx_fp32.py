"""fp32 ONNX Runtime: the same weights, exported and run with ONNX Runtime's graph optimizations."""

from __future__ import annotations

from bench.core.census import Census
from bench.core.compressor import CompressContext, Verification
from bench.core.model import ModelHandle
from bench.core.settings import PluginConfig
from compressors.onnx_export import ToOnnxRuntime, export_for_ort, export_seq2seq_for_ort, ort_session, seq2seq_session


class OnnxConfig(PluginConfig):
    """Settings of onnx."""

    fuse: bool = True
    """Apply ONNX Runtime's transformer fusions (attention, layer norm, GELU) where the model type allows."""


class Onnx(ToOnnxRuntime):
    """Run the model in ONNX Runtime at fp32: its own row, to separate runtime gains from compression."""

    name = "onnx"
    precision = "f32"
    description = "fp32 ONNX Runtime with graph optimizations (runtime change, no compression)"
    Config = OnnxConfig
    config: OnnxConfig

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        from bench.runtimes.onnx_seq2seq import is_seq2seq

        if is_seq2seq(model):
            return seq2seq_session(export_seq2seq_for_ort(model, ctx), model, ctx)
        return ort_session(export_for_ort(model, ctx, self.config.fuse), model, ctx)

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        from bench.runtimes.onnx import int8_operators

        ops = after.operators()
        if after.runtime != "onnxruntime" or ops is None:
            return Verification(passed=False, summary=f"no ONNX Runtime model: a {after.runtime} one")
        checks = {"operators": ops, "int8_operators": int8_operators(ops)}
        return Verification(passed=True, summary=f"ONNX graph of {sum(ops.values())} operators, float", checks=checks)
