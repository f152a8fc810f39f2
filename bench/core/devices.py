"""Device strings in one place: `cpu`, `cuda` (the current CUDA device) or `cuda:N`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

DEVICE_FORM = re.compile(r"^(cpu|cuda)(?::(\d+))?$")
DeviceKind = Literal["cpu", "cuda"]


@dataclass(frozen=True)
class DeviceRef:
    """A parsed device string."""

    kind: DeviceKind
    index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse(device: str) -> DeviceRef:
    """Parse `cpu`, `cuda` or `cuda:N`; anything else is a ValueError naming the forms."""
    match = DEVICE_FORM.match(device.strip())
    if match is None or (match.group(1) == "cpu" and match.group(2) is not None):
        shown = device if len(device) <= 40 else device[:40] + "…"
        raise ValueError(f"unknown device '{shown}': use cpu, cuda or cuda:N")
    kind: DeviceKind = "cuda" if match.group(1) == "cuda" else "cpu"
    return DeviceRef(kind, int(match.group(2)) if match.group(2) is not None else None)


def kind(device: str) -> DeviceKind:
    """`cpu` or `cuda`: what plugins declare they run on."""
    return parse(device).kind


def is_cuda(device: str) -> bool:
    """Whether `device` names a CUDA device."""
    return kind(device) == "cuda"


def cuda_index(device: str) -> int:
    """The CUDA ordinal `device` names (`cuda` alone: the current device, 0 unless changed)."""
    ref = parse(device)
    if ref.kind != "cuda":
        raise ValueError(f"{device} is not a CUDA device")
    if ref.index is not None:
        return ref.index
    import torch

    return int(torch.cuda.current_device()) if torch.cuda.is_available() else 0


def ort_cuda_options(device: str) -> dict[str, str]:
    """ONNX Runtime's CUDAExecutionProvider options for `device` (its ordinal)."""
    ref = parse(device)
    return {"device_id": str(ref.index or 0)}


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
