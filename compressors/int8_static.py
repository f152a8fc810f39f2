"""Static int8 quantization with ONNX Runtime: activation ranges calibrated on the task's training split."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from bench.api import Batch, CompressContext, Compressor, ModelHandle, Verification
from compressors.hardware import note_int8_hardware
from compressors.onnx_export import export_for_ort, ort_session, verify_int8_graph
from compressors.patterns import Pattern, matching_nodes


class Int8StaticConfig(BaseModel):
    """Settings of int8-static."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calibration_samples: PositiveInt = 64
    """Training-split examples whose activations set the ranges (never evaluation examples)."""
    method: Literal["minmax", "entropy", "percentile"] = "percentile"
    percentile: float = Field(99.999, gt=90.0, le=100.0)
    """For method=percentile: the activation percentile kept in range."""
    per_channel: bool = True
    format: Literal["qdq", "qoperator"] = "qdq"
    """QDQ (Quantize/DequantizeLinear around float ops, fused by the runtime) or QOperator (QLinear* ops)."""
    activations: Literal["uint8", "int8"] = "uint8"
    weights_only_matmuls: bool = False
    """Quantize only the MatMuls with a weight operand; keep the attention score and context
    products (activation x activation) in float."""
    skip: list[Pattern] = []
    """Regular expressions (re.search) over ONNX node names kept in float, e.g. 'layer\\.\\d+/output/dense'
    for the FFN output projections, whose post-GELU inputs have outliers that per-tensor ranges clip."""


def activation_matmuls(graph: Any) -> list[str]:
    """Names of MatMul nodes neither of whose operands is a weight (initializer, possibly transposed)."""
    weights = {init.name for init in graph.initializer}
    # an initializer reached through Transpose/Cast/Reshape nodes is still a weight
    changed = True
    while changed:
        changed = False
        for node in graph.node:
            if node.op_type in ("Transpose", "Cast", "Reshape", "Identity") and node.input and node.input[0] in weights:
                for out in node.output:
                    if out not in weights:
                        weights.add(out)
                        changed = True
    return [n.name for n in graph.node if n.op_type == "MatMul" and not any(i in weights for i in n.input)]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over bench batches."""

    def __init__(self, batches: list[Batch], input_names: list[str]) -> None:
        # one row at a time: the histogram calibrators need every sample to have the same shape
        rows = [
            {n: b[n][i : i + 1].cpu().numpy() for n in input_names}
            for b in batches
            for i in range(len(b[input_names[0]]))
        ]
        self._items: Iterator[dict[str, Any]] = iter(rows)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._items, None)

    def rewind(self) -> None:  # pragma: no cover - not used by the calibrators we call
        raise NotImplementedError


class Int8Static(Compressor):
    """Static int8: weights and activations int8, activation scales fixed by calibration."""

    name = "int8-static"
    description = "ONNX Runtime static int8 (QDQ, percentile ranges), calibrated on the training split (CPU)"
    Config = Int8StaticConfig
    devices = frozenset({"cpu"})
    needs_calibration = True
    config: Int8StaticConfig

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        source = export_for_ort(model, ctx, fuse=False)  # the quantizer needs plain MatMul nodes
        prepared = source.with_name("model-prepared.onnx")
        # ONNX shape inference only: symbolic inference gives up on the exported attention reshapes.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        calibration = ctx.calibration_data(self.config.calibration_samples)
        ctx.facts["calibration"] = {
            "split": "train",
            "examples": len(calibration.example_ids),
            "batches": len(calibration.batches),
            "method": self.config.method,
            "example_ids": calibration.example_ids,
        }
        graph = onnx.load(str(prepared), load_external_data=False).graph
        inputs = [i.name for i in graph.input]
        excluded = activation_matmuls(graph) if self.config.weights_only_matmuls else []
        excluded += matching_nodes(graph, self.config.skip)
        ctx.facts["float_matmuls"] = len(excluded)
        reader = _Reader(calibration.batches, inputs)
        CalibrationDataReader.register(_Reader)
        method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[self.config.method]
        extra: dict[str, Any] = {}
        if self.config.method == "percentile":
            extra["CalibPercentile"] = self.config.percentile
        target = source.with_name("model-int8-static.onnx")
        quantize_static(
            str(prepared),
            str(target),
            reader,
            quant_format=QuantFormat.QDQ if self.config.format == "qdq" else QuantFormat.QOperator,
            per_channel=self.config.per_channel,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8 if self.config.activations == "uint8" else QuantType.QInt8,
            calibrate_method=method,
            op_types_to_quantize=["MatMul", "Gemm"],
            nodes_to_exclude=excluded,
            extra_options=extra,
        )
        note_int8_hardware(ctx)
        return ort_session(target, model, ctx)

    def verify(self, before: Mapping[str, Any], after: ModelHandle) -> Verification:
        return verify_int8_graph(after, "int8-static")
