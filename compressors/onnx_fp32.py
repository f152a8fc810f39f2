"""fp32 ONNX Runtime: the same weights, exported and run with ONNX Runtime's graph optimizations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from bench.api import CompressContext, Compressor, ModelHandle, Verification
from compressors.onnx_export import export_for_ort, export_seq2seq_for_ort, ort_session, seq2seq_session


class OnnxConfig(BaseModel):
    """Settings of onnx."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fuse: bool = True
    """Apply ONNX Runtime's transformer fusions (attention, layer norm, GELU) where the model type allows."""


class Onnx(Compressor):
    """Run the model in ONNX Runtime at fp32: its own row, to separate runtime gains from compression."""

    name = "onnx"
    description = "fp32 ONNX Runtime with graph optimizations (runtime change, no compression)"
    Config = OnnxConfig
    devices = frozenset({"cpu"})
    config: OnnxConfig

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        from bench.runtimes.onnx_seq2seq import is_seq2seq

        if is_seq2seq(model):
            return seq2seq_session(export_seq2seq_for_ort(model, ctx), model, ctx)
        return ort_session(export_for_ort(model, ctx, self.config.fuse), model, ctx)

    def verify(self, before: Mapping[str, Any], after: ModelHandle) -> Verification:
        from bench.runtimes.onnx import OrtModel, int8_operators
        from bench.runtimes.onnx_seq2seq import OrtSeq2SeqModel

        if not isinstance(after, (OrtModel, OrtSeq2SeqModel)):
            return Verification(passed=False, summary="no ONNX Runtime model")
        ops = after.operators()
        checks = {"operators": ops, "int8_operators": int8_operators(ops)}
        return Verification(passed=True, summary=f"ONNX graph of {sum(ops.values())} operators, float", checks=checks)
