"""The identity compressor: the uncompressed model every other row is compared against."""

from __future__ import annotations

from bench.core.census import Census
from bench.core.compressor import CompressContext, Compressor, Trait, Verification
from bench.core.model import ModelHandle


class Baseline(Compressor):
    """Returns the model unchanged."""

    name = "baseline"
    precision = "f32"
    description = "the uncompressed model (reference for deltas and agreement)"
    requires = frozenset()

    def removes(self) -> frozenset[Trait]:
        return frozenset()

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        return model

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        return Verification(passed=True, summary="nothing claimed: the uncompressed model")
