"""Shared steps of the ONNX Runtime compressors: export the eager model, fuse, wrap in a session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.core.compressor import LOADED_TRAITS, CompressContext, Compressor, Trait, Verification
from bench.core.errors import UnsupportedHere
from bench.core.model import ModelHandle
from bench.runtimes.torch import eager

if TYPE_CHECKING:
    from bench.runtimes.onnx import OrtModel
    from bench.runtimes.onnx_seq2seq import OrtSeq2SeqModel


class ToOnnxRuntime(Compressor):
    """Base of the CPU compressors that export an eager model to ONNX Runtime (int8-dynamic does so only
    with its onnxruntime backend, and says so in `removes`)."""

    devices = frozenset({"cpu"})
    requires = frozenset({Trait.PYTORCH, Trait.FLOAT_LINEAR})

    def removes(self) -> frozenset[Trait]:
        return LOADED_TRAITS  # an ONNX Runtime session from here on


def require_onnx() -> None:
    """Raise UnsupportedHere (a skipped run) when the `onnx` extra is not installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise UnsupportedHere(f"ONNX Runtime is not installed ({exc}); pip install 'bench[onnx]'") from None


def export_for_ort(model: ModelHandle, ctx: CompressContext, fuse: bool) -> Path:
    """Export `model` (eager PyTorch) to ONNX in the work folder; fuse transformer blocks if asked.

    The export and fusion are recorded in ctx.facts; a model that cannot be fused is noted and kept unfused.
    """
    from bench.runtimes.onnx import export, fuse_transformer

    require_onnx()
    model = eager(model, "ONNX export")
    folder = ctx.workdir / "onnx"
    path = folder / "model.onnx"
    outputs = export(model, ctx.example_batch(), path)
    ctx.facts["onnx_outputs"] = outputs
    if not fuse:
        return path
    fused = folder / "model-fused.onnx"
    try:
        ctx.facts["onnx_fusions"] = fuse_transformer(path, fused, model.config)
    except ValueError as exc:
        ctx.notes.append(f"ONNX graph not fused: {exc}")
        return path
    return fused


def export_seq2seq_for_ort(model: ModelHandle, ctx: CompressContext) -> Path:
    """Export an encoder-decoder model (eager PyTorch) to unmerged fp32 ONNX graphs in the work folder."""
    from bench.runtimes.onnx_seq2seq import export_seq2seq

    require_onnx()
    folder = export_seq2seq(eager(model, "ONNX export"), ctx.workdir / "onnx-seq2seq" / "fp32")
    ctx.facts["onnx_graphs"] = "encoder, decoder and decoder-with-past (merged into one file after quantization)"
    ctx.notes.append("encoder-decoder ONNX graphs are not fused (ONNX Runtime's fusions here are for encoders)")
    return folder


def seq2seq_session(folder: Path, model: ModelHandle, ctx: CompressContext) -> OrtSeq2SeqModel:
    """Merge the decoders of `folder` and run it with ONNX Runtime at the run's thread count."""
    from bench.runtimes.onnx_seq2seq import OrtSeq2SeqModel, merge_decoders

    return OrtSeq2SeqModel(merge_decoders(folder), model.tokenizer, ctx.device, ctx.threads, model.config)


def ort_session(path: Path, model: ModelHandle, ctx: CompressContext) -> OrtModel:
    """An OrtModel over `path`, with the run's thread count."""
    from bench.runtimes.onnx import OrtModel

    return OrtModel(path, model.tokenizer, ctx.device, ctx.threads, model.config)


def verify_int8_graph(after: ModelHandle, what: str) -> Verification:
    """Pass when the ONNX graph has int8 operators and int8 weights; fail when it stayed float."""
    from bench.core.census import take_census
    from bench.runtimes.onnx import int8_operators

    ops = after.operators()
    if after.runtime != "onnxruntime" or ops is None:
        return Verification(passed=False, summary=f"{what}: no ONNX Runtime graph (a {after.runtime} model)")
    census = take_census(after.tensors())
    int8_weights = sum(n for dtype, n in census.dtypes.items() if dtype in ("int8", "uint8"))
    checks = {"operators": ops, "int8_operators": int8_operators(ops), "weight_dtypes": census.dtypes}
    if checks["int8_operators"] == 0 or int8_weights == 0:
        return Verification(passed=False, summary=f"{what}: the ONNX graph has no int8 operators", checks=checks)
    return Verification(
        passed=True,
        summary=f"{checks['int8_operators']} int8 operators in the ONNX graph, {int8_weights:,} int8 weights",
        checks=checks,
    )
