"""What the compressing process and the serving process say to each other (pickled over a socket pair).
Arrays are numpy: the serving process imports no PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.core.device_memory import DeviceMemory
from bench.core.serving import ServeRecipe
from bench.core.shape import Shape

Arrays = dict[str, npt.NDArray[np.generic]]


@dataclass(frozen=True)
class Load:
    """Load the saved model of `folder` as `recipe` says."""

    recipe: ServeRecipe
    folder: Path


@dataclass(frozen=True)
class Loaded:
    """The model is ready: its input and output names, and the memory before and after loading it."""

    inputs: list[str]
    outputs: list[str]
    rss_start: int
    rss_runtime: int
    rss_loaded: int
    load_s: float
    torch_loaded: bool
    """Whether PyTorch is imported in the serving process (never for these runtimes: a check, not a setting)."""


@dataclass(frozen=True)
class Time:
    """Time the forward pass over `pool` (the run's timing inputs at its shape)."""

    pool: list[Arrays]
    warmup: int
    min_iterations: int
    min_duration_s: float
    max_iterations: int
    max_duration_s: float
    shape: Shape
    scope: str


@dataclass(frozen=True)
class Forward:
    """One scoring call."""

    batch: Arrays


@dataclass(frozen=True)
class Finish:
    """No more calls: report the memory peaks and exit."""


@dataclass(frozen=True)
class Peaks:
    """The serving process's memory while timed and while scoring, and its high-water mark."""

    timing: int | None
    scoring: int | None
    max_rss: int
    device: DeviceMemory | None = None
    """CUDA rows: the GPU memory while timed and while scoring."""


@dataclass(frozen=True)
class Failed:
    """The serving process could not do what it was asked: one line, and the traceback's tail."""

    message: str
    traceback: str
