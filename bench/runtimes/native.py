"""Runtime setup that needs no PyTorch: the ONNX Runtime session options and the OpenVINO compile settings
that both the compressing process and a serving process use, so that a served model runs exactly as the
one that was measured in the compressing process would have."""

from __future__ import annotations

from typing import Any


def session_options(threads: int) -> Any:
    """ONNX Runtime session options: all graph optimizations, `threads` intra-op threads, one inter-op."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def openvino_config(threads: int, precision: str, performance_hint: str) -> dict[str, object]:
    """OpenVINO CPU compile settings: `threads` inference threads and the inference precision pinned (it
    would otherwise run an "fp32" model in bf16 on CPUs with AVX512-BF16 or AMX)."""
    return {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": performance_hint,
    }
