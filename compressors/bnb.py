"""bitsandbytes int8 (LLM.int8()) and 4-bit NF4, applied at load time through transformers (CUDA only)."""

from __future__ import annotations

from typing import Any, Literal

from bench.api import CompressContext, Compressor, ModelHandle, PluginConfig, Trait, Verification
from bench.measure.census import Census, take_census
from bench.runtimes.torch import TorchModel


class BnbConfig(PluginConfig):
    """Settings of the bitsandbytes compressors."""

    compute_dtype: Literal["float16", "bfloat16"] = "float16"
    skip_modules: list[str] = []
    """Module names left in full precision (the task head is always kept by transformers' defaults)."""


class Bnb4Config(BnbConfig):
    """Settings of bnb-nf4."""

    double_quant: bool = True


def _bnb_missing() -> str | None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        return f"bitsandbytes is not installed ({exc}); pip install 'bench[gpu]'"
    return None


class _Bnb(Compressor):
    devices = frozenset({"cuda"})
    requires = frozenset({Trait.AS_LOADED})
    """bitsandbytes quantizes while loading: only a first step (after `baseline` at most) can reload."""
    layer_type: str
    config: BnbConfig

    def unsupported_reason(self, device: str, cpu_flags: frozenset[str]) -> str | None:
        if device != "cuda":
            return f"{self.name}: bitsandbytes quantized kernels run on CUDA only"
        return _bnb_missing()

    def quantization_config(self) -> Any:
        raise NotImplementedError

    def removes(self) -> frozenset[Trait]:
        return frozenset({Trait.AS_LOADED, Trait.FLOAT_LINEAR})

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        import torch

        del model  # reloaded below: bitsandbytes quantizes while loading
        handle = ctx.reload(
            quantization_config=self.quantization_config(),
            device_map={"": ctx.device},
            dtype=getattr(torch, self.config.compute_dtype),
        )
        assert isinstance(handle, TorchModel)
        return handle

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        if not isinstance(after, TorchModel):
            return Verification(passed=False, summary="not a PyTorch model")
        layers = sum(1 for m in after.module.modules() if type(m).__name__ == self.layer_type)
        census = take_census(after.tensors())
        checks = {"quantized_layers": layers, "weight_dtypes": census.dtypes}
        if layers == 0:
            return Verification(passed=False, summary=f"no {self.layer_type} layer in the model", checks=checks)
        return Verification(passed=True, summary=f"{layers} {self.layer_type} layers", checks=checks)


class BnbInt8(_Bnb):
    """LLM.int8(): int8 weights with fp16 outlier columns."""

    name = "bnb-int8"
    precision = "int8"
    description = "bitsandbytes LLM.int8() weights via transformers (CUDA)"
    Config = BnbConfig
    layer_type = "Linear8bitLt"

    def quantization_config(self) -> Any:
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=self.config.skip_modules or None)

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        ctx.notes.append(
            "bitsandbytes int8 is known to be slower than fp16 at small batch sizes (outlier decomposition)"
        )
        return super().compress(model, ctx)


class BnbNf4(_Bnb):
    """4-bit NormalFloat weights, dequantized on the fly to the compute dtype."""

    name = "bnb-nf4"
    precision = "int4"
    description = "bitsandbytes 4-bit NF4 weights via transformers (CUDA)"
    Config = Bnb4Config
    layer_type = "Linear4bit"
    config: Bnb4Config

    def quantization_config(self) -> Any:
        import torch
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=self.config.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, self.config.compute_dtype),
            llm_int8_skip_modules=self.config.skip_modules or None,
        )
