"""fp16 and bf16: cast the weights and run in that precision."""

from __future__ import annotations

from typing import ClassVar

from bench.core.census import Census, take_census
from bench.core.compressor import CompressContext, Compressor, Verification
from bench.core.devices import Device
from bench.core.model import ModelHandle
from bench.runtimes.torch import TorchModel, eager, fp32_module_names, kept_in_fp32


class _Cast(Compressor):
    """Cast every floating-point weight to `dtype_name` (inputs stay integer ids), except the modules the
    model keeps in float32 in that dtype (T5's `wo` in float16), as transformers does when loading."""

    dtype_name: ClassVar[str]
    native_cpu: ClassVar[dict[str, str]]
    """The CPU flags of native arithmetic in the dtype, and how messages name them."""
    emulated_on_cpu: ClassVar[bool] = False
    """Whether a CPU without them runs the row emulated (noted), rather than skipping it."""

    def cuda_reason(self) -> str | None:
        """Why CUDA devices here cannot run the dtype, or None."""
        return None

    def unsupported_reason(self, device: Device, cpu_flags: frozenset[str]) -> str | None:
        native = " or ".join(self.native_cpu.values())
        if device.is_cuda:
            reason = self.cuda_reason()
        elif self.native_cpu.keys() & cpu_flags or self.emulated_on_cpu:
            reason = None
        else:
            reason = f"{self.name} on this CPU has no native {self.dtype_name} arithmetic (no {native}): use bf16"
        return reason or super().unsupported_reason(device, cpu_flags)

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        import torch

        if self.emulated_on_cpu and ctx.device == "cpu" and not self.native_cpu.keys() & ctx.cpu_flags:
            native = "/".join(self.native_cpu.values())
            ctx.notes.append(f"{self.name} on a CPU without {native}: emulated, expect it slower than fp32")
        model = eager(model, self.name)
        kept = kept_in_fp32(model.module, self.dtype_name)
        model.module.to(getattr(torch, self.dtype_name))
        modules = dict(model.module.named_modules())
        for name in kept:
            modules[name].to(torch.float32)
        if kept:
            ctx.notes.append(
                f"{len(kept)} modules stay float32, as the model asks in {self.dtype_name} "
                f"(keep in float32: {', '.join(fp32_module_names(model.module, self.dtype_name))})"
            )
        return TorchModel(model.module, model.tokenizer, model.device)

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        census = take_census(after.tensors())
        floats = {d: n for d, n in census.dtypes.items() if d.startswith(("float", "bfloat"))}
        cast = floats.get(self.dtype_name, 0)
        total = sum(floats.values())
        kept = _kept_elements(after, self.dtype_name)
        checks: dict[str, object] = {"weight_dtypes": census.dtypes, "kept_float32": kept}
        if total == 0 or cast + kept != total:
            return Verification(
                passed=False,
                summary=f"{total - cast - kept:,} floating weights are not {self.dtype_name}",
                checks=checks,
            )
        rest = f", except {kept:,} the model keeps in float32" if kept else ""
        return Verification(
            passed=True, summary=f"{cast:,} floating weights are {self.dtype_name}{rest}", checks=checks
        )


def _kept_elements(model: ModelHandle, dtype_name: str) -> int:
    """float32 weight elements in the modules the model keeps in float32."""
    if not isinstance(model, TorchModel):
        return 0
    modules = dict(model.module.named_modules())
    seen: set[int] = set()
    total = 0
    for name in kept_in_fp32(model.module, dtype_name):
        for tensor in modules[name].parameters(recurse=True):
            if str(tensor.dtype) == "torch.float32" and id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel()
    return total


class Fp16(_Cast):
    """Half precision. On CPU only where the ISA has fp16 arithmetic; otherwise a skipped run."""

    name = "fp16"
    precision = "f16"
    description = "cast weights to float16 and run in float16 (CUDA; CPU only with AVX512-FP16/AMX-FP16)"
    dtype_name = "float16"
    native_cpu = {"avx512_fp16": "AVX512-FP16", "amx_fp16": "AMX-FP16"}


class Bf16(_Cast):
    """bfloat16, on CPU (native with AVX512-BF16/AMX-BF16, emulated without) and CUDA (compute capability
    8.0+)."""

    name = "bf16"
    precision = "bf16"
    description = "cast weights to bfloat16 and run in bfloat16 (CPU, CUDA)"
    dtype_name = "bfloat16"
    native_cpu = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}
    emulated_on_cpu = True

    def cuda_reason(self) -> str | None:
        import torch

        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported(including_emulation=False):
            return "this GPU has no native bfloat16 (compute capability below 8.0)"
        return None
