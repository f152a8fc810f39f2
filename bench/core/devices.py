"""Devices in one place: `cpu`, `cuda` (the current CUDA device) or `cuda:N`, parsed once where a suite names
them into a `Device`, which every later step (the worker, the plugins, the runtimes) reads without parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

DEVICE_FORM = re.compile(r"^(cpu|cuda)(?::(\d+))?$")
DeviceKind = Literal["cpu", "cuda"]


@dataclass(frozen=True)
class DeviceRef:
    """A parsed device string."""

    kind: DeviceKind
    index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


class Device(str):
    """A device as the suite names it, parsed: the canonical string itself (torch, ONNX Runtime and records take
    it as is), with its kind and index. Pydantic fields of this type validate and store it parsed."""

    kind: DeviceKind
    ordinal: int | None
    """The CUDA ordinal named (None for `cpu` and a bare `cuda`)."""

    def __new__(cls, text: str) -> Device:
        if isinstance(text, Device):
            return text
        ref = parse(text)
        device = super().__new__(cls, str(ref))
        device.kind, device.ordinal = ref.kind, ref.index
        return device

    @property
    def is_cuda(self) -> bool:
        """Whether this names a CUDA device."""
        return self.kind == "cuda"

    @property
    def ort_cuda_options(self) -> dict[str, str]:
        """ONNX Runtime's CUDAExecutionProvider options for this device (its ordinal)."""
        return {"device_id": str(self.ordinal or 0)}

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(), serialization=core_schema.to_string_ser_schema()
        )


def parse(device: str) -> DeviceRef:
    """Parse `cpu`, `cuda` or `cuda:N`; anything else is a ValueError naming the forms."""
    match = DEVICE_FORM.match(device.strip())
    if match is None or (match.group(1) == "cpu" and match.group(2) is not None):
        shown = device if len(device) <= 40 else device[:40] + "…"
        raise ValueError(f"unknown device '{shown}': use cpu, cuda or cuda:N")
    kind: DeviceKind = "cuda" if match.group(1) == "cuda" else "cpu"
    return DeviceRef(kind, int(match.group(2)) if match.group(2) is not None else None)


def is_cuda(device: str) -> bool:
    """Whether `device` names a CUDA device (a Device answers without parsing again)."""
    return Device(device).is_cuda


def cuda_index(device: str) -> int:
    """The CUDA ordinal `device` names (`cuda` alone: the current device, 0 unless changed)."""
    ref = Device(device)
    if not ref.is_cuda:
        raise ValueError(f"{device} is not a CUDA device")
    if ref.ordinal is not None:
        return ref.ordinal
    import torch

    return int(torch.cuda.current_device()) if torch.cuda.is_available() else 0


def cuda_unavailable_reason(device: str = "cuda") -> str | None:
    """Why `device` cannot run here, telling a CPU-only torch build from a machine without a GPU; None
    when it can."""
    import torch

    if torch.version.cuda is None:
        return f"this torch build has no CUDA (torch {torch.__version__}): install a CUDA wheel of torch"
    if not torch.cuda.is_available():
        return f"no CUDA device on this machine (torch {torch.__version__} is built for CUDA {torch.version.cuda})"
    index = cuda_index(device)
    count = torch.cuda.device_count()
    if index >= count:
        return f"{device}: this machine has {count} CUDA device(s)"
    return None


def ort_cuda_options(device: str) -> dict[str, str]:
    """ONNX Runtime's CUDAExecutionProvider options for `device` (its ordinal)."""
    return Device(device).ort_cuda_options
