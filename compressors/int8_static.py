"""Static int8 quantization with ONNX Runtime: activation ranges calibrated on the task's training split."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveInt

from bench.core.census import Census
from bench.core.compressor import CompressContext, Verification
from bench.core.model import Batch, ModelHandle
from bench.core.settings import Choice, PluginConfig
from compressors.hardware import note_int8_hardware
from compressors.onnx_export import (
    ToOnnxRuntime,
    export_for_ort,
    export_seq2seq_for_ort,
    ort_session,
    seq2seq_session,
    verify_int8_graph,
)
from compressors.patterns import Pattern, matching_nodes


class Int8StaticConfig(PluginConfig):
    """Settings of int8-static."""

    calibration_samples: PositiveInt = 64
    """Training-split examples whose activations set the ranges (never evaluation examples)."""
    calibration_shard: PositiveInt = 4
    """Inputs whose activations are held in memory at once: ranges (or histograms) are collected shard by
    shard and merged, so the memory of calibration does not grow with calibration_samples (MiniLM-L6 at
    sequence length 384: 2.4 GB with shards of 8, 12.2 GB with 64 inputs at once). A shard must divide the
    inputs: the largest size up to this one that does is used."""
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
    calibration_new_tokens: PositiveInt = 32
    """Encoder-decoder models: tokens generated per calibration input, whose decoder inputs calibrate
    the decoder graphs."""
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
    """onnxruntime's CalibrationDataReader protocol over recorded model inputs (numpy arrays), with the
    `set_range` that lets the quantizer calibrate shard by shard."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows
        self._items: Iterator[dict[str, Any]] = iter(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._items = iter(self._rows[start_index:end_index])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._items, None)

    def rewind(self) -> None:
        self._items = iter(self._rows)


def shard_size(total: int, most: int) -> int:
    """The largest shard of at most `most` inputs that divides `total` (the quantizer needs equal shards)."""
    return max(size for size in range(1, min(most, total) + 1) if total % size == 0)


class Int8Static(ToOnnxRuntime):
    """Static int8: weights and activations int8, activation scales fixed by calibration."""

    name = "int8-static"
    precision = "int8"
    description = "ONNX Runtime static int8 (QDQ, percentile ranges), calibrated on the training split (CPU)"
    Config = Int8StaticConfig
    needs_training_split = True
    config: Int8StaticConfig
    search_space = {
        "method": Choice(values=("minmax", "entropy", "percentile")),
        "per_channel": Choice(values=(True, False)),
        "calibration_samples": Choice(values=(32, 64, 128)),
        "weights_only_matmuls": Choice(values=(False, True)),
    }
    layer_setting = "skip"

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from bench.runtimes.onnx_seq2seq import is_seq2seq

        calibration = ctx.calibration_data(self.config.calibration_samples)
        facts: dict[str, object] = {
            "split": ctx.calibration_split,
            "examples": len(calibration.example_ids),
            "batches": len(calibration.batches),
            "method": self.config.method,
            "example_ids": calibration.example_ids,
        }
        ctx.facts["calibration"] = facts
        note_int8_hardware(ctx)
        if is_seq2seq(model):
            return self._seq2seq(model, calibration.batches, facts, ctx)
        source = export_for_ort(model, ctx, fuse=False)  # the quantizer needs plain MatMul nodes
        prepared = source.with_name("model-prepared.onnx")
        # ONNX shape inference only: symbolic inference gives up on the exported attention reshapes.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        rows = calibration.single_inputs()
        target = source.with_name("model-int8-static.onnx")
        self._quantize(prepared, target, rows, self.config.method, ctx)
        return ort_session(target, model, ctx)

    def _seq2seq(
        self, model: ModelHandle, batches: list[Batch], facts: dict[str, object], ctx: CompressContext
    ) -> ModelHandle:
        """Quantize encoder, decoder and decoder-with-past, each calibrated on the inputs it really receives
        while the fp32 model generates for the calibration examples."""
        from bench.runtimes.onnx_seq2seq import GRAPHS, OrtSeq2SeqModel, record_session_inputs, transform_graphs

        source = export_seq2seq_for_ort(model, ctx)
        fp32 = OrtSeq2SeqModel(source, model.tokenizer, ctx.device, ctx.threads, model.config)
        settings = {"num_beams": 1, "do_sample": False, "max_new_tokens": self.config.calibration_new_tokens}
        feeds = record_session_inputs(fp32, lambda: [fp32.generate(b, settings) for b in batches])
        by_graph = dict(zip(GRAPHS, (feeds["encoder"], feeds["decoder"], feeds["decoder_with_past"]), strict=True))
        facts["feeds"] = {g: len(v) for g, v in by_graph.items()}
        method = self.config.method
        if method != "minmax":
            # ONNX Runtime's histogram calibrators stack every feed into one array, so they need equal
            # shapes; encoder lengths and decoder steps differ. Min/max ranges reduce each feed on its own.
            ctx.notes.append(f"{method} calibration needs inputs of one shape: minmax used for seq2seq")
            method = facts["method"] = "minmax"
        target = transform_graphs(
            source, source.with_name("int8-static"), lambda a, b: self._quantize(a, b, by_graph[a.name], method, ctx)
        )
        return seq2seq_session(target, model, ctx)

    def _quantize(
        self, source: Path, target: Path, rows: list[dict[str, Any]], chosen: str, ctx: CompressContext
    ) -> None:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        graph = onnx.load(str(source), load_external_data=False).graph
        inputs = {i.name for i in graph.input}
        excluded = activation_matmuls(graph) if self.config.weights_only_matmuls else []
        excluded += matching_nodes(graph, self.config.skip)
        counted = ctx.facts.get("float_matmuls")
        ctx.facts["float_matmuls"] = (counted if isinstance(counted, int) else 0) + len(excluded)
        reader = _Reader([{k: v for k, v in row.items() if k in inputs} for row in rows])
        CalibrationDataReader.register(_Reader)
        method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[chosen]
        shard = shard_size(len(rows), self.config.calibration_shard)
        ctx.facts["calibration_shard"] = shard
        # ONNX Runtime holds every calibration input's activations until it reduces them: in shards, at most
        # `shard` inputs' worth (the option is named for min/max, but it shards every calibrator)
        extra: dict[str, Any] = {"CalibStridedMinMax": shard}
        if chosen == "percentile":
            extra["CalibPercentile"] = self.config.percentile
        quantize_static(
            str(source),
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

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        return verify_int8_graph(after, "int8-static")
