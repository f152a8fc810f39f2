"""An example bench compressor plugin, packaged and registered like any third-party one.

It stores the input embedding matrix (often a third of a small encoder's weights) in bfloat16; the
rest of the model stays float32, and activations are promoted back to float32 after the lookup.
"""

from __future__ import annotations

from typing import Literal

from bench.api import CompressContext, Compressor, ModelHandle, PluginConfig, Trait, Verification
from bench.measure.census import Census
from bench.runtimes.torch import TorchModel, eager


class Bf16EmbeddingsConfig(PluginConfig):
    """The dtype the embedding matrix is stored in."""

    dtype: Literal["bfloat16", "float16"] = "bfloat16"


class Bf16Embeddings(Compressor):
    """Input embeddings in bfloat16."""

    name = "example-bf16-embeddings"  # the same as the entry-point name in pyproject.toml
    description = "example plugin: input embeddings stored in bfloat16"
    Config = Bf16EmbeddingsConfig
    requires = frozenset({Trait.PYTORCH})  # in a chain, refused after a step that leaves no PyTorch model
    config: Bf16EmbeddingsConfig

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        import torch

        torch_model = eager(model, self.name)  # a TypeError naming this plugin for another runtime
        embeddings = torch_model.module.get_input_embeddings()
        embeddings.weight.data = embeddings.weight.data.to(getattr(torch, self.config.dtype))
        ctx.facts["embedding_elements"] = embeddings.weight.numel()
        return torch_model

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        if not isinstance(after, TorchModel):  # later in a chain the model may be another runtime's
            return Verification(passed=False, summary=f"no PyTorch embeddings to check in a {after.runtime} model")
        dtype = str(after.module.get_input_embeddings().weight.dtype).removeprefix("torch.")
        return Verification(
            passed=dtype == self.config.dtype, summary=f"input embeddings are {dtype}", checks={"dtype": dtype}
        )
