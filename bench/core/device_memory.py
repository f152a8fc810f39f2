"""GPU memory per phase: the caching allocator's peaks, reset at each phase, and the device's memory in use.

The allocator's peaks count this process's tensors only. The device's memory in use (NVML, else
`torch.cuda.mem_get_info`) also counts the CUDA context, cuDNN/cuBLAS workspaces and other processes; it is
read at both edges of a phase, so a spike inside a phase shows only in the allocator's peaks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from pydantic import BaseModel, Field


class DevicePhase(BaseModel):
    """One phase's GPU memory, in bytes."""

    allocated_peak: int
    """Peak of the bytes held by tensors (torch.cuda.max_memory_allocated after a reset at the phase start)."""
    reserved_peak: int
    """Peak of the bytes the caching allocator held from the driver."""
    device_used: int | None = None
    """Device memory in use at the phase's end or start, whichever was higher: every process and context."""


class DeviceMemory(BaseModel):
    """A CUDA run's GPU memory, phase by phase."""

    device: str
    total_bytes: int | None = None
    phases: dict[str, DevicePhase] = Field(default_factory=dict)
    source: str = "torch.cuda"
    """Where `device_used` comes from: nvml or torch.cuda.mem_get_info."""

    def steady_allocated(self) -> int | None:
        """Peak bytes held by tensors while the compressed model was timed and evaluated."""
        steady = [self.phases[p].allocated_peak for p in ("latency", "evaluate") if p in self.phases]
        return max(steady) if steady else None

    def steady_device_used(self) -> int | None:
        """Device memory in use while the compressed model was timed and evaluated (all processes)."""
        used = [self.phases[p].device_used for p in ("latency", "evaluate") if p in self.phases]
        known = [u for u in used if u is not None]
        return max(known) if known else None


class CudaMemoryApi(Protocol):
    """What the tracker needs of CUDA (faked in tests)."""

    def release_cached(self) -> None:
        """Collect garbage and return the allocator's unused blocks to the driver."""

    def reset_peaks(self) -> None:
        """Start new peak counts."""

    def peaks(self) -> tuple[int, int]:
        """(allocated, reserved) peaks since the last reset."""

    def device_used(self) -> int | None:
        """Bytes in use on the whole device, or None when unknown."""

    def total(self) -> int | None:
        """The device's memory, in bytes."""


class TorchCudaMemory:
    """`CudaMemoryApi` over torch.cuda for one device, with NVML for device-wide use when it is present."""

    def __init__(self, device: str) -> None:
        import torch

        from bench.core import nvml
        from bench.core.devices import cuda_index

        self.index = cuda_index(device)
        self._nvml = nvml.handle_for(str(getattr(torch.cuda.get_device_properties(self.index), "uuid", "")))
        self.source = "nvml" if self._nvml is not None else "torch.cuda.mem_get_info"

    def release_cached(self) -> None:
        import gc

        import torch

        gc.collect()
        torch.cuda.synchronize(self.index)
        torch.cuda.empty_cache()

    def reset_peaks(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(self.index)

    def peaks(self) -> tuple[int, int]:
        import torch

        return int(torch.cuda.max_memory_allocated(self.index)), int(torch.cuda.max_memory_reserved(self.index))

    def device_used(self) -> int | None:
        if self._nvml is not None:
            from bench.core import nvml

            return nvml.memory_used(self._nvml)
        import torch

        free, total = torch.cuda.mem_get_info(self.index)
        return int(total - free)

    def total(self) -> int | None:
        import torch

        return int(torch.cuda.get_device_properties(self.index).total_memory)


class DeviceMemoryTracker:
    """Resets the peaks at each phase's start and reads them at its end, after releasing what the previous
    phase left cached (a replaced model, the allocator's free blocks)."""

    def __init__(self, api: CudaMemoryApi, device: str, source: str = "torch.cuda") -> None:
        self.api = api
        self.record = DeviceMemory(device=device, total_bytes=api.total(), source=source)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Attribute the GPU memory used inside the block to phase `name`."""
        self.api.release_cached()
        self.api.reset_peaks()
        before = self.api.device_used()
        try:
            yield
        finally:
            allocated, reserved = self.api.peaks()
            after = self.api.device_used()
            known = [u for u in (before, after) if u is not None]
            self.record.phases[name] = DevicePhase(
                allocated_peak=allocated, reserved_peak=reserved, device_used=max(known) if known else None
            )
