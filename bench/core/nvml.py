"""NVML (nvidia-ml-py), where it and a driver are present: device-wide memory and the GPU's limits."""

from __future__ import annotations

from typing import TypeAlias

NvmlHandle: TypeAlias = object
"""An opaque pynvml device handle."""
LimitValue: TypeAlias = "bool | int | float"


def handle_for(uuid: str | None) -> NvmlHandle | None:
    """The NVML handle of the GPU with this UUID (torch's, with or without NVML's 'GPU-' prefix), or None
    without nvidia-ml-py, a driver or such a GPU. NVML numbers devices in PCI order, which
    CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER can make differ from CUDA's: hence the UUID."""
    if not uuid:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            if uuid in str(pynvml.nvmlDeviceGetUUID(handle)):
                return handle
    except Exception:
        return None
    return None


def limits(handle: NvmlHandle) -> dict[str, LimitValue]:
    """MIG mode, maximum clocks and the enforced power limit, each where this GPU reports it."""
    import pynvml

    readers = {
        "mig_mode": lambda: bool(pynvml.nvmlDeviceGetMigMode(handle)[0]),
        "sm_clock_max_mhz": lambda: int(pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)),
        "memory_clock_max_mhz": lambda: int(pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM)),
        "power_limit_w": lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000,
    }
    found: dict[str, LimitValue] = {}
    for key, read in readers.items():
        try:
            found[key] = read()
        except pynvml.NVMLError:  # not supported on this GPU
            continue
    return found


def memory_used(handle: NvmlHandle) -> int:
    """Bytes in use on the device, by every process and context."""
    import pynvml

    return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
