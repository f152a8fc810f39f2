"""The identity compressor: the uncompressed model every other row is compared against."""

from __future__ import annotations

from bench.api import CompressContext, Compressor, ModelHandle


class Baseline(Compressor):
    """Returns the model unchanged."""

    name = "baseline"
    description = "the uncompressed model (reference for deltas and agreement)"

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        return model
