"""Hardware caveats that compressors attach to their records."""

from __future__ import annotations

from bench.core.compressor import CompressContext

INT8_DOT_PRODUCT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def note_int8_hardware(ctx: CompressContext) -> None:
    """Flag int8 runs on a CPU without int8 dot-product instructions."""
    if ctx.device == "cpu" and not INT8_DOT_PRODUCT_FLAGS & ctx.cpu_flags:
        ctx.notes.append("int8 on a CPU without VNNI/AMX int8 instructions: little or no speed-up expected")
