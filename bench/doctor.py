"""`bench doctor`: what this machine can run, and why not, on one screen.

Each finding is a `Finding` (a topic, a verdict, one line of detail); `findings()` gathers them without
running a model, and `runnable()` asks every installed compressor whether it can run on each device here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, requires, version
from typing import Literal

from bench.core.devices import Device
from bench.core.environment import cpu_flags

Verdict = Literal["ok", "no", "warn", "info"]
PINNED = (
    "torch",
    "transformers",
    "tokenizers",
    "optimum",
    "optimum-onnx",
    "onnxruntime",
    "openvino",
    "nncf",
    "torchao",
)
"""The libraries whose versions decide what bench measures (bitsandbytes and accelerate: see runtime_findings)."""


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's screen."""

    topic: str
    verdict: Verdict
    detail: str


def _requirement(package: str) -> str | None:
    """bench's version specifier for `package` (from its installed metadata), e.g. '<4.58,>=4.57'."""
    from packaging.requirements import Requirement

    for line in requires("bench") or []:
        req = Requirement(line)
        if req.name == package:
            return str(req.specifier) or None
    return None


def pinned_versions() -> list[Finding]:
    """Each library bench pins: installed or not, and inside bench's range or not."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    found = []
    for package in PINNED:
        wanted = _requirement(package)
        try:
            have = version(package)
        except PackageNotFoundError:
            found.append(Finding(package, "info", f"not installed (bench wants {wanted or 'any'})"))
            continue
        inside = wanted is None or Version(have.split("+")[0]) in SpecifierSet(wanted)
        detail = f"{have}" + (f" (bench wants {wanted})" if wanted else "")
        found.append(Finding(package, "ok" if inside else "warn", detail if inside else f"{detail}: outside the range"))
    return found


def torch_findings() -> list[Finding]:
    """The torch build, CUDA, each GPU and its native half precisions."""
    import torch

    from bench.core.devices import cuda_unavailable_reason

    built = torch.version.cuda
    out = [Finding("torch build", "info", f"{torch.__version__}, " + (f"CUDA {built}" if built else "CPU-only"))]
    reason = cuda_unavailable_reason("cuda")
    if reason is not None:
        out.append(Finding("GPU", "no", f"this machine has no usable GPU: {reason}"))
        return out
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        cc = (props.major, props.minor)
        bf16 = (
            torch.cuda.is_bf16_supported(including_emulation=False)
            if i == torch.cuda.current_device()
            else cc >= (8, 0)
        )
        out.append(
            Finding(
                f"cuda:{i}",
                "ok",
                f"{props.name}, compute capability {cc[0]}.{cc[1]}, {props.total_memory / 2**30:.0f} GiB; "
                f"fp16 {'native (tensor cores)' if cc >= (7, 0) else 'without tensor cores'}; "
                f"bf16 {'native' if bf16 else 'not native'}",
            )
        )
    out.append(Finding("cuDNN", "info", str(torch.backends.cudnn.version())))
    return out


def cpu_findings() -> list[Finding]:
    """The CPU's instructions that decide int8 and half-precision speed."""
    flags = cpu_flags()

    def has(*names: str) -> bool:
        return bool(set(names) & flags)

    return [
        Finding(
            "int8 dot products",
            "ok" if has("avx512_vnni", "avx_vnni", "amx_int8") else "no",
            _flags(flags, "vnni", "amx_int8"),
        ),
        Finding("bf16 on CPU", "ok" if has("avx512_bf16", "amx_bf16") else "no", _flags(flags, "bf16")),
        Finding("fp16 on CPU", "ok" if has("avx512_fp16", "amx_fp16") else "no", _flags(flags, "fp16")),
    ]


def _flags(flags: frozenset[str], *parts: str) -> str:
    named = sorted(f for f in flags if any(p in f for p in parts))
    return ", ".join(named) if named else "no such instructions (emulated or unavailable)"


def _module_finding(name: str, module: str, present: str, absent: str, absent_level: Verdict = "no") -> Finding:
    """Whether an optional module can be imported (found without importing it)."""
    if importlib.util.find_spec(module) is not None:
        return Finding(name, "ok", present)
    return Finding(name, absent_level, absent)


def runtime_findings() -> list[Finding]:
    """bitsandbytes and accelerate, ONNX Runtime's providers, OpenVINO's devices, flash-attn, NVML."""
    out = []
    for package, what in (("bitsandbytes", "bnb-int8, bnb-nf4"), ("accelerate", "loading models for bitsandbytes")):
        try:
            out.append(Finding(package, "ok", f"{version(package)}, for {what}"))
        except PackageNotFoundError:
            out.append(Finding(package, "no", f"not installed, needed for {what}: pip install 'bench[gpu]'"))
    try:
        import onnxruntime

        out.append(Finding("onnxruntime providers", "info", ", ".join(onnxruntime.get_available_providers())))
    except ImportError:
        out.append(Finding("onnxruntime providers", "no", "onnxruntime is not installed"))
    try:
        import openvino

        out.append(Finding("OpenVINO devices", "info", ", ".join(openvino.Core().available_devices)))
    except ImportError:
        out.append(Finding("OpenVINO devices", "no", "openvino is not installed"))
    out.append(_module_finding("flash-attn", "flash_attn", "installed", "not installed (attention: flash_attention_2)"))
    out.append(
        _module_finding(
            "NVML", "pynvml", "nvidia-ml-py installed", "nvidia-ml-py not installed: device memory from torch", "info"
        )
    )
    return out


def runnable(device_kinds: tuple[str, ...] = ("cpu", "cuda")) -> list[Finding]:
    """Every installed compressor on each device: runnable here, or why not."""
    from bench.core.devices import cuda_unavailable_reason
    from bench.core.errors import ConfigError
    from bench.core.registry import COMPRESSORS, PluginError

    flags = cpu_flags()
    out = []
    for device in device_kinds:
        absent = cuda_unavailable_reason(device) if device == "cuda" else None
        if absent is not None:
            out.append(Finding(f"on {device}", "no", f"nothing runs: {absent}"))
            continue
        ready, blocked = [], []
        for name in COMPRESSORS.names():
            try:
                compressor = COMPRESSORS.load(name).from_mapping({})
            except (PluginError, ConfigError) as exc:
                blocked.append(f"{name}: {str(exc).splitlines()[0]}")
                continue
            reason = compressor.unsupported_reason(Device(device), flags)
            if reason is None:
                ready.append(name)
            else:
                blocked.append(reason if reason.startswith(name) else f"{name}: {reason}")
        if ready:
            out.append(Finding(f"runs on {device}", "ok", ", ".join(ready)))
        out.extend(Finding(f"not on {device}", "no", why) for why in blocked)
    return out


def findings() -> list[Finding]:
    """Everything the doctor reports, in screen order."""
    return [*torch_findings(), *cpu_findings(), *runtime_findings(), *pinned_versions(), *runnable()]
