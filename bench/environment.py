"""What machine and software a run was measured on. Figures from different machines are not comparable."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel

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
    """One CUDA device."""

    name: str
    compute_capability: str
    memory_bytes: int
    driver: str | None = None
    cuda: str | None = None


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
    if "torch" not in sys.modules:
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        out.append(
            GpuInfo(
                name=props.name,
                compute_capability=f"{props.major}.{props.minor}",
                memory_bytes=int(props.total_memory),
                driver=_nvidia_driver(),
                cuda=torch.version.cuda,
            )
        )
    return out


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


def capture(threads: int | None = None, seed: int | None = None) -> Environment:
    """Describe this machine. GPUs are listed only when torch is already imported (worker processes)."""
    model, flags = _cpu_info()
    commit, dirty = git_state()
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
        gpus=_gpus(),
        libraries=_libraries(),
        git_commit=commit,
        git_dirty=dirty,
        threads=threads,
        seed=seed,
    )


def default_threads() -> int:
    """Physical cores (the default intra-op thread count)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def describe(env: Environment | dict[str, Any]) -> str:
    """One line naming the machine, for warnings and report headers."""
    e = env if isinstance(env, Environment) else Environment.model_validate(env)
    gpu = f", {e.gpus[0].name}" if e.gpus else ""
    return f"{e.machine} ({e.cpu_model}, {e.physical_cores} cores{gpu})"
