"""bitsandbytes int8 (LLM.int8()) and 4-bit NF4, applied at load time through transformers (CUDA only)."""

from __future__ import annotations

import importlib.util
from collections import Counter
from typing import Any, Literal

from bench.core.census import Census, take_census
from bench.core.compressor import CompressContext, Compressor, Trait, Verification
from bench.core.devices import Device
from bench.core.model import ModelHandle
from bench.core.settings import PluginConfig
from bench.runtimes.torch import TorchModel, eager, fp32_module_names, linear_layers


class BnbConfig(PluginConfig):
    """Settings of the bitsandbytes compressors."""

    compute_dtype: Literal["float16", "bfloat16"] = "float16"
    """The dtype of activations and of every weight bitsandbytes leaves unquantized."""
    skip_modules: list[str] = []
    """More module names to leave unquantized. The layers transformers keeps by default (the task head)
    are always kept too."""


class Bnb4Config(BnbConfig):
    """Settings of bnb-nf4."""

    double_quant: bool = True


def _missing_library() -> str | None:
    """Why bitsandbytes cannot load a model here (a skipped record), or None."""
    for module, package in (("bitsandbytes", "bitsandbytes"), ("accelerate", "accelerate")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed: pip install 'bench[gpu]'"
    return None


def default_kept(module: Any) -> list[str]:
    """The modules transformers leaves unquantized by default (the output head; tied weights), found on a
    storage-less copy of the model's architecture (transformers deep-copies the model it inspects)."""
    import torch
    from transformers.integrations import get_keys_to_not_convert

    with torch.device("meta"):
        skeleton = type(module)(module.config)
    return list(get_keys_to_not_convert(skeleton))


class _Bnb(Compressor):
    devices = frozenset({"cuda"})
    requires = frozenset({Trait.AS_LOADED})
    """bitsandbytes quantizes while loading: only a first step (after `baseline` at most) can reload."""
    layer_type: str
    config: BnbConfig

    def unsupported_reason(self, device: Device, cpu_flags: frozenset[str]) -> str | None:
        if not device.is_cuda:
            return f"{self.name}: bitsandbytes quantized kernels run on CUDA only"
        return _missing_library()

    def quantization_config(self, skip: list[str]) -> Any:
        raise NotImplementedError

    def removes(self) -> frozenset[Trait]:
        return frozenset({Trait.AS_LOADED, Trait.FLOAT_LINEAR})

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        import torch

        loaded = eager(model, self.name)
        # transformers drops its default skips when given any: keep the head whatever the suite adds
        skip = sorted({*default_kept(loaded.module), *self.config.skip_modules})
        loaded.release()  # the float model goes before the quantized one loads: its memory is not counted twice
        del model, loaded
        handle = ctx.reload(
            quantization_config=self.quantization_config(skip),
            device_map={"": ctx.device},
            dtype=getattr(torch, self.config.compute_dtype),
        )
        assert isinstance(handle, TorchModel)
        ctx.facts["kept_unquantized"] = skip
        ctx.notes.append(
            f"weights bitsandbytes leaves unquantized (embeddings, norms, {', '.join(skip)}) run in "
            f"{self.config.compute_dtype}, the compute dtype"
        )
        return handle

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        if not isinstance(after, TorchModel):
            return Verification(passed=False, summary="not a PyTorch model")
        layers = linear_layers(after.module)
        kinds = Counter(layers.values())
        quantized = sum(n for kind, n in kinds.items() if kind.startswith(self.layer_type))
        kept = {name: kind for name, kind in layers.items() if not kind.startswith(self.layer_type)}
        fp32 = fp32_module_names(after.module, "float16")
        census = take_census(after.tensors())
        checks = {
            "layers": dict(kinds),
            "unquantized_layers": kept,
            "model_keeps_float32": fp32,
            "weight_dtypes": census.dtypes,
            "stored_bytes": census.stored_bytes,
        }
        if quantized == 0:
            return Verification(passed=False, summary=f"no {self.layer_type} layer in the model", checks=checks)
        by_kind = Counter(kind for kind in kept.values())
        rest = "; ".join(f"{n} {kind}" for kind, n in sorted(by_kind.items()))
        summary = f"{quantized} {self.layer_type} layers" + (f"; unquantized: {rest}" if rest else "")
        if fp32 and any(kind.endswith("float32") for kind in kept.values()):
            summary += f" (the model keeps {', '.join(fp32)} in float32)"
        return Verification(passed=True, summary=summary, checks=checks)


class BnbInt8(_Bnb):
    """LLM.int8(): int8 weights with fp16 outlier columns."""

    name = "bnb-int8"
    precision = "int8"
    description = "bitsandbytes LLM.int8() weights via transformers (CUDA)"
    Config = BnbConfig
    layer_type = "Linear8bitLt"

    def quantization_config(self, skip: list[str]) -> Any:
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip or None)

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

    def quantization_config(self, skip: list[str]) -> Any:
        import torch
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=self.config.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, self.config.compute_dtype),
            llm_int8_skip_modules=skip or None,
        )
