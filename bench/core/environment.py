"""What machine and software a run was measured on. Figures from different machines are not comparable."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil
from pydantic import BaseModel

from bench.core.nvml import LimitValue

ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimd",
    "sve",
)
LIBRARIES = (
    "torch",
    "transformers",
    "tokenizers",
    "onnxruntime",
    "onnx",
    "openvino",
    "nncf",
    "optimum",
    "optimum-onnx",
    "torchao",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "numpy",
    "bench",
)


class GpuInfo(BaseModel):
    """One CUDA device: what decides its figures (model, UUID, driver, MIG, clocks and power limit)."""

    name: str
    compute_capability: str
    memory_bytes: int
    driver: str | None = None
    cuda: str | None = None
    """The CUDA runtime torch was built with."""
    uuid: str | None = None
    mig_mode: bool | None = None
    """Whether the GPU is partitioned (MIG): a slice is not the whole GPU."""
    sm_clock_max_mhz: int | None = None
    memory_clock_max_mhz: int | None = None
    power_limit_w: float | None = None


class CudaSettings(BaseModel):
    """torch's CUDA numerics settings, which change what fp32 matmuls compute and how fast."""

    cudnn: int | None = None
    """cuDNN version (torch.backends.cudnn.version())."""
    matmul_allow_tf32: bool
    cudnn_allow_tf32: bool
    float32_matmul_precision: str
    """highest (true fp32), high (TF32) or medium (bf16)."""
    fp16_reduced_precision_reduction: bool
    bf16_reduced_precision_reduction: bool


class Environment(BaseModel):
    """The hardware and software of a run."""

    machine: str
    hostname: str
    os: str
    python: str
    cpu_model: str
    cpu_flags: list[str]
    """The ISA extensions that matter for inference kernels, of those the CPU has."""
    physical_cores: int | None
    logical_cores: int | None
    ram_bytes: int
    gpus: list[GpuInfo] = []
    cuda_settings: CudaSettings | None = None
    """Present where a GPU is: the TF32 and reduced-precision settings in force."""
    libraries: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    threads: int | None = None
    seed: int | None = None


def machine_name() -> str:
    """Folder name for this machine's results: $BENCH_MACHINE, or the host name, made path-safe."""
    raw = os.environ.get("BENCH_MACHINE") or socket.gethostname() or "machine"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-") or "machine"


def _cpu_info() -> tuple[str, set[str]]:
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    return model, flags


def cpu_flags() -> frozenset[str]:
    """The inference-relevant ISA flags of this CPU."""
    _, flags = _cpu_info()
    return frozenset(f for f in ISA_FLAGS if f in flags)


def _libraries() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def git_state(path: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the bench checkout, or (None, None) outside a git work tree."""
    where = path or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def _gpus() -> list[GpuInfo]:
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    driver = _nvidia_driver()
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        uuid = str(getattr(props, "uuid", "")) or None
        out.append(
            GpuInfo.model_validate(
                {
                    "name": props.name,
                    "compute_capability": f"{props.major}.{props.minor}",
                    "memory_bytes": int(props.total_memory),
                    "driver": driver,
                    "cuda": torch.version.cuda,
                    "uuid": uuid,
                    **_limits(uuid),
                }
            )
        )
    return out


def _limits(uuid: str | None) -> dict[str, LimitValue]:
    from bench.core import nvml

    handle = nvml.handle_for(uuid)
    return nvml.limits(handle) if handle is not None else {}


def _cuda_settings() -> CudaSettings | None:
    import torch

    if not torch.cuda.is_available():
        return None
    matmul = torch.backends.cuda.matmul
    return CudaSettings(
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        matmul_allow_tf32=bool(matmul.allow_tf32),
        cudnn_allow_tf32=bool(torch.backends.cudnn.allow_tf32),
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        fp16_reduced_precision_reduction=bool(matmul.allow_fp16_reduced_precision_reduction),
        bf16_reduced_precision_reduction=bool(matmul.allow_bf16_reduced_precision_reduction),
    )


def _nvidia_driver() -> str | None:
    try:
        res = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def capture(threads: int | None = None, seed: int | None = None, gpus: bool = False) -> Environment:
    """Describe this machine. GPUs are listed when `gpus` is set or torch is already imported (workers);
    otherwise the launcher would pay for importing torch."""
    model, flags = _cpu_info()
    commit, dirty = git_state()
    with_gpus = gpus or "torch" in sys.modules
    return Environment(
        machine=machine_name(),
        hostname=socket.gethostname(),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        cpu_model=model,
        cpu_flags=[f for f in ISA_FLAGS if f in flags],
        physical_cores=psutil.cpu_count(logical=False),
        logical_cores=psutil.cpu_count(logical=True),
        ram_bytes=int(psutil.virtual_memory().total),
        gpus=_gpus() if with_gpus else [],
        cuda_settings=_cuda_settings() if with_gpus else None,
        libraries=_libraries(),
        git_commit=commit,
        git_dirty=dirty,
        threads=threads,
        seed=seed,
    )


def default_threads() -> int:
    """Physical cores (the default intra-op thread count)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def describe(env: Environment | Mapping[str, object]) -> str:
    """One line naming the machine, for warnings and report headers."""
    e = env if isinstance(env, Environment) else Environment.model_validate(env)
    gpu = f", {e.gpus[0].name}" if e.gpus else ""
    return f"{e.machine} ({e.cpu_model}, {e.physical_cores} cores{gpu})"
