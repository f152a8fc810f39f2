"""An example bench compressor plugin, packaged and registered like any third-party one.

It stores the input embedding matrix (often a third of a small encoder's weights) in bfloat16; the
rest of the model stays float32, and activations are promoted back to float32 after the lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from bench.api import CompressContext, Compressor, ModelHandle, Verification
from bench.runtimes.torch import TorchModel


class Bf16EmbeddingsConfig(PluginConfig):
    """No settings beyond the dtype."""


    dtype: str = "bfloat16"


class Bf16Embeddings(Compressor):
    """Input embeddings in bfloat16."""

    name = "example-bf16-embeddings"
    description = "example plugin: input embeddings stored in bfloat16"
    Config = Bf16EmbeddingsConfig
    config: Bf16EmbeddingsConfig

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        import torch

        if not isinstance(model, TorchModel):
            raise TypeError("example-bf16-embeddings needs an eager PyTorch model")
        embeddings = model.module.get_input_embeddings()
        embeddings.weight.data = embeddings.weight.data.to(getattr(torch, self.config.dtype))
        ctx.facts["embedding_elements"] = embeddings.weight.numel()
        return model

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        assert isinstance(after, TorchModel)
        dtype = str(after.module.get_input_embeddings().weight.dtype).removeprefix("torch.")
        return Verification(
            passed=dtype == self.config.dtype, summary=f"input embeddings are {dtype}", checks={"dtype": dtype}
        )
